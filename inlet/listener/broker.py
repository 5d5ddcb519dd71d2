"""The listener's STOMP link: subscribe, hand messages over, acknowledge, dead-letter, publish.

stomp.py calls ``on_message`` in its receiver thread. Handling an event there would stall
reading the socket, so heart-beats would go unread and the broker would drop us during a
slow handler; the link only queues the message and the listener's main thread does the
work. Every delivery remembers the connection it came on: after a reconnect, the broker
has already taken back what the old connection had not acknowledged, and acknowledging it
on the new one would be an error. stomp.py does not reconnect by itself after the broker
went away, so :meth:`BrokerLink.connect` is called again by the listener, with backoff.

The listener takes its link as a parameter (:class:`Link`, the seam its unit tests use);
:class:`BrokerLink` is the real one, on :mod:`inlet.messaging`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from inlet.config import BrokerSettings, ListenerSettings
from inlet.messaging import Connection, Message, Subscription

log = logging.getLogger(__name__)

#: Headers the listener adds to a dead-lettered message (selector-friendly names: no '-').
DLQ_ID = "inlet_dlq_id"
DLQ_REASON = "inlet_dlq_reason"
DLQ_SOURCE = "inlet_dlq_source"
DLQ_AT = "inlet_dlq_at"
DLQ_HANDLER = "inlet_dlq_handler"
DLQ_ORIGINAL_ID = "inlet_original_message_id"
#: How many deliveries of this message ended without being settled (see :meth:`BrokerLink.requeue`).
DELIVERIES = "inlet_deliveries"
#: Headers the broker sets on a delivery: never copied onto a message we send.
_BROKER_HEADERS = frozenset(
    {
        "message-id",
        "destination",
        "subscription",
        "ack",
        "redelivered",
        "expires",
        "timestamp",
        "priority",
        "content-length",
        "content-type",
        "persistent",
        "receipt",
        "transaction",
        "JMSXUserID",
    }
)


def header_safe(text: str, limit: int) -> str:
    """``text`` fit for a STOMP header we write: printable characters only, at most ``limit``.

    A reason can quote the rejected message; a control character (a NUL ends a frame) would
    break the DLQ frame, and an escape sequence would reach the operator's terminal.
    """
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


@dataclass(frozen=True)
class Delivery(Message):
    @property
    def deliveries(self) -> int:
        """Earlier deliveries of this event that ended unsettled (our own header; junk counts as 0)."""
        text = self.headers.get(DELIVERIES, "")
        return int(text) if text.isascii() and text.isdigit() and len(text) < 6 else 0


class Link(Protocol):
    """What the listener needs of its broker link (as an HTTP client needs a transport).

    Deliveries arrive in ``inbox``; ``generation`` names the current connection (a delivery
    of an older one is the broker's again). Settling a delivery returns False when it could
    not be done: the broker then redelivers the message.
    """

    inbox: queue.Queue[Delivery]

    @property
    def generation(self) -> int: ...

    def connect(self) -> None: ...

    def connect_with_backoff(self, stopping: threading.Event) -> bool: ...

    def is_connected(self) -> bool: ...

    def ack(self, delivery: Delivery) -> bool: ...

    def dead_letter(self, delivery: Delivery, reason: str, handler: str | None = None) -> str | None: ...

    def requeue(self, delivery: Delivery, deliveries: int) -> bool: ...

    def publish(self, destination: str, body: str, headers: dict[str, str]) -> None: ...

    def close(self) -> None: ...


class BrokerLink:
    """The listener's :class:`Link`: client-individual subscriptions to ``destinations``."""

    def __init__(self, broker: BrokerSettings, settings: ListenerSettings, destinations: list[str]) -> None:
        self.settings = settings
        self.destinations = destinations
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        prefetch = {"activemq.prefetchSize": str(settings.prefetch)}
        self.conn = Connection(
            broker,
            subscriptions=[
                Subscription(dest, id=f"inlet-{i}", ack="client-individual", headers=prefetch)
                for i, dest in enumerate(destinations)
            ],
            on_message=lambda m: self.inbox.put(Delivery(m.headers, m.body, m.generation)),
            heartbeat_ms=settings.heartbeat_ms,
        )

    @property
    def generation(self) -> int:
        return self.conn.generation

    def connect(self) -> None:
        """Connect and subscribe; returns only once the broker confirmed every subscription."""
        self.conn.connect()
        log.info("subscribed to %s (prefetch %d)", ", ".join(self.destinations), self.settings.prefetch)

    def connect_with_backoff(self, stopping: threading.Event) -> bool:
        """Retry :meth:`connect` with exponential backoff and jitter until it works or we stop."""
        if not self.conn.connect_with_backoff(stopping, self.settings.reconnect_initial, self.settings.reconnect_max):
            return False
        log.info("subscribed to %s (prefetch %d)", ", ".join(self.destinations), self.settings.prefetch)
        return True

    def is_connected(self) -> bool:
        return self.conn.is_connected()

    def _current(self, delivery: Delivery) -> bool:
        # The broker took the message back when its connection died; it will redeliver it.
        return delivery.generation == self.conn.generation and self.conn.is_connected()

    def ack(self, delivery: Delivery) -> bool:
        if not self._current(delivery):
            return False
        try:
            self.conn.ack(delivery)
        except Exception as exc:  # StompException, OSError, or a frame without an ack id
            log.warning("ack of %s failed (%s): the broker will redeliver it", delivery.message_id, exc)
            return False
        return True

    def dead_letter(self, delivery: Delivery, reason: str, handler: str | None = None) -> str | None:
        """Move the message to the DLQ: the send and the ack in one broker transaction."""
        if not self._current(delivery):
            return None
        dlq_id = uuid.uuid4().hex
        headers = {
            DLQ_ID: dlq_id,
            DLQ_REASON: header_safe(reason, 1000),
            DLQ_SOURCE: delivery.headers.get("destination", ""),
            DLQ_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            DLQ_ORIGINAL_ID: delivery.message_id,
        }
        if handler:
            headers[DLQ_HANDLER] = handler
        if "event_type" in delivery.headers:
            headers["event_type"] = header_safe(delivery.headers["event_type"], 200)
        if not self._move(delivery, self.settings.dlq, headers, "dead-lettering"):
            return None
        return dlq_id

    def requeue(self, delivery: Delivery, deliveries: int) -> bool:
        """Put a copy of the message back at the end of its queue, counting ``deliveries``.

        ActiveMQ tells a STOMP consumer only *that* a message was delivered before
        (``redelivered: true``: a listener took it and died, or was stopped, before settling
        it), not how often. The listener therefore carries the count itself: the copy holds
        it in :data:`DELIVERIES`, and the send and the ack of the original are one broker
        transaction, so the count is never lost nor the message doubled.
        """
        if not self._current(delivery):
            return False
        headers = {k: v for k, v in delivery.headers.items() if k not in _BROKER_HEADERS}
        headers[DELIVERIES] = str(deliveries)
        return self._move(delivery, delivery.headers.get("destination", ""), headers, "requeueing")

    def _move(self, delivery: Delivery, to: str, headers: dict[str, str], what: str) -> bool:
        if not to:
            log.warning("%s %s: no destination; the broker will redeliver it", what, delivery.message_id)
            return False
        try:
            self.conn.send_and_ack(delivery, to, delivery.body, headers)
        except Exception as exc:  # whatever the frame held: the message stays with the broker
            log.warning("%s %s failed (%s): the broker will redeliver it", what, delivery.message_id, exc)
            return False
        return True

    def publish(self, destination: str, body: str, headers: dict[str, str]) -> None:
        # Only the receipt says the broker stored it: the outbox must not mark it sent before.
        self.conn.send(destination, body, headers)

    def close(self) -> None:
        """Disconnect: whatever was delivered and not acknowledged goes back to the queue."""
        self.conn.close()
