"""Kombu's Redis transport, made to outlive whatever is pushed into its queues.

Anyone who can write to Redis can push anything onto a Celery queue (uploads, reconstruction),
not only a task.
Kombu's own transport decodes each popped item inside the worker's event loop, and an item
that is not JSON, or JSON that is not a Kombu envelope, raises there: Celery calls that an
"Unrecoverable error" and the worker exits. This transport drops such an item with an ALARM
line instead, and the worker keeps consuming. The item was already popped, so nothing is
redelivered and nothing loops; a real task that fails later is Celery's business as before
(it is tracked as unacknowledged before Celery sees it, and comes back after the visibility
timeout).

Selected by ``broker_transport`` in the uploader's and the reconstruction's Celery apps (a
module of its own: those two never import each other); the URL stays
``redis://:PASSWORD@host:port/db``.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger("inlet.alarm")

#: What decoding or unpacking a popped item raises when it is not a task message.
NOT_A_MESSAGE = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))
        except NOT_A_MESSAGE as exc:
            log.error(
                "ALARM dropped an item of the broker queue that is not a task message (%s: %.200s)",
                type(exc).__name__,
                exc,
            )
            return True


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
