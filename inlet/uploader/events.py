"""inlet's own events on ``[broker] inlet_topic``: publishing ``file-registered`` and
``file-quarantined``, receiving ``daq-release``.

Rucio emits nothing when a file is registered (rucio#8694), so the uploader says it itself,
right after registration. The envelope, headers and names are :mod:`inlet.event_contract`'s.

``file-quarantined`` is the uploader's alarm: the listener's default routes hand it to its
alarm handler (webhook). The uploader never imports the listener; they meet on the topic.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from inlet import messaging
from inlet.config import BrokerSettings
from inlet.event_contract import FILE_QUARANTINED, envelope, publish_headers

log = logging.getLogger(__name__)


def file_quarantined(info: dict[str, Any], **context: Any) -> dict[str, Any]:
    """The event for one quarantine (``info``: the reason file's content), with its run/stream if known.

    Every quarantine is its own event (the same name may be quarantined again later), so the
    id is drawn once here and kept for every send of this event.
    """
    payload = {**info, "name": str(info.get("source", "")).rsplit("/", 1)[-1], "host": socket.gethostname()}
    payload.update({k: v for k, v in context.items() if v is not None})
    return envelope(FILE_QUARANTINED, payload, f"{FILE_QUARANTINED}:{uuid.uuid4().hex}")


class Publisher:
    """One STOMP connection per process, reopened after any failure.

    :meth:`publish` returns once the broker stored the events: the caller marks their outbox
    rows sent only then.
    """

    def __init__(self, broker: BrokerSettings) -> None:
        self.conn = messaging.Connection(broker)
        self._lock = threading.Lock()

    def publish(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if not self.conn.is_connected():
                        self.conn.connect()
                    frames = (
                        (json.dumps(ev), {**publish_headers(ev), "content-type": "application/json"}) for ev in events
                    )
                    self.conn.send_all(self.conn.broker.inlet_topic, frames)
                    return
                except Exception:
                    self.close()
                    if attempt == 2:
                        raise

    def close(self) -> None:
        self.conn.close()


#: Seconds to wait for the broker to confirm a subscription.
SUBSCRIBE_TIMEOUT = 10.0


class Subscription:
    """Receive inlet events (a non-durable topic subscription; the poller covers what it misses)."""

    def __init__(self, broker: BrokerSettings, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.conn = messaging.Connection(
            broker,
            subscriptions=[messaging.Subscription(broker.inlet_topic, id="inlet-uploader")],
            on_message=messaging.json_documents(on_event, "the inlet topic"),
            receipt_timeout=SUBSCRIBE_TIMEOUT,
        )

    def open(self) -> None:
        """Subscribe; a :class:`~inlet.messaging.BrokerUnavailable` (a ConnectionError) if the broker
        does not confirm it: until then events sent to the topic may not reach us, and the caller
        falls back to polling and tries again."""
        self.conn.connect()

    @property
    def alive(self) -> bool:
        return self.conn.is_connected()

    def close(self) -> None:
        self.conn.close()
