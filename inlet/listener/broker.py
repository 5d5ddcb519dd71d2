"""The listener's STOMP link: subscribe, hand messages over, acknowledge, dead-letter, publish.

stomp.py calls ``on_message`` in its receiver thread. Handling an event there would stall
reading the socket, so heart-beats would go unread and the broker would drop us during a
slow handler; the link only queues the message and the listener's main thread does the
work. Every delivery remembers the connection it came on: after a reconnect, the broker
has already taken back what the old connection had not acknowledged, and acknowledging it
on the new one would be an error. stomp.py does not reconnect by itself after the broker
went away, so :meth:`BrokerLink.connect` is called again by the listener, with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass

import stomp
from stomp.exception import StompException

from inlet.config import BrokerSettings, ListenerSettings
from inlet.errors import InletError
from inlet.stomp_login import BrokerLoginError, BrokerLoginRefused, login

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
    {"message-id", "destination", "subscription", "ack", "redelivered", "expires", "timestamp", "priority",
     "content-length", "content-type", "persistent", "receipt", "transaction", "JMSXUserID"}
)  # fmt: skip


def header_safe(text: str, limit: int) -> str:
    """``text`` fit for a STOMP header we write: printable characters only, at most ``limit``.

    A reason can quote the rejected message; a control character (a NUL ends a frame) would
    break the DLQ frame, and an escape sequence would reach the operator's terminal.
    """
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class BrokerUnavailable(InletError):
    """The broker could not be reached or refused us; the message says why."""


class BrokerRefused(BrokerUnavailable):
    """The broker refused our login: retrying with the same credentials cannot help."""


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    generation: int

    @property
    def message_id(self) -> str:
        return self.headers.get("message-id", "")

    @property
    def redelivered(self) -> bool:
        return self.headers.get("redelivered", "false") == "true"

    @property
    def deliveries(self) -> int:
        """Earlier deliveries of this event that ended unsettled (our own header; junk counts as 0)."""
        text = self.headers.get(DELIVERIES, "")
        return int(text) if text.isascii() and text.isdigit() and len(text) < 6 else 0


def connection(broker: BrokerSettings, heartbeat_ms: int = 0) -> stomp.Connection12:
    # STOMP 1.2: every MESSAGE carries an `ack` id, which ACK and NACK name.
    return stomp.Connection12(
        [(broker.host, broker.stomp_port)],
        heartbeats=(heartbeat_ms, heartbeat_ms),
        # A busy 2-core host can delay the broker's beat: allow three periods before giving up.
        heart_beat_receive_scale=3.0,
        reconnect_attempts_max=1,
        auto_decode=False,
        timeout=10,
    )


class _Receiver(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self, link: BrokerLink, generation: int) -> None:
        self.link = link
        self.generation = generation

    def on_message(self, frame: stomp.utils.Frame) -> None:
        body = frame.body if isinstance(frame.body, bytes) else str(frame.body).encode()
        self.link.inbox.put(Delivery(dict(frame.headers), body, self.generation))

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.link.receipts.put(frame.headers.get("receipt-id", ""))

    def on_error(self, frame: stomp.utils.Frame) -> None:
        if not self.link.connected.is_set():
            return  # a refused login: BrokerLink.connect raises it as one line
        log.error("broker error: %s %s", frame.headers.get("message", ""), frame.body[:500] if frame.body else "")

    def on_heartbeat_timeout(self) -> None:
        log.warning("broker heart-beat missed: the connection is considered dead")

    def on_disconnected(self) -> None:
        if self.generation == self.link.generation:
            self.link.connected.clear()


class BrokerLink:
    def __init__(self, broker: BrokerSettings, settings: ListenerSettings, destinations: list[str]) -> None:
        self.broker = broker
        self.settings = settings
        self.destinations = destinations
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.connected = threading.Event()
        self.generation = 0
        self.conn: stomp.Connection12 | None = None
        self._send_lock = threading.Lock()

    def connect(self) -> None:
        """Connect and subscribe; returns only once the broker confirmed every subscription."""
        self.close()
        self.generation += 1
        conn = connection(self.broker, self.settings.heartbeat_ms)
        conn.set_listener("inlet", _Receiver(self, self.generation))
        b = self.broker
        try:
            login(conn, b.host, b.stomp_port, b.username, b.password)
        except BrokerLoginRefused as exc:
            raise BrokerRefused(exc.problem, exc.fix) from None
        except BrokerLoginError as exc:
            raise BrokerUnavailable(exc.problem, exc.fix) from None
        self.conn = conn
        self.connected.set()
        for i, dest in enumerate(self.destinations):
            receipt = uuid.uuid4().hex
            # subscribe() is asynchronous: only the receipt proves that the broker will deliver.
            conn.subscribe(
                dest,
                id=f"inlet-{i}",
                ack="client-individual",
                headers={"activemq.prefetchSize": str(self.settings.prefetch), "receipt": receipt},
            )
            self._wait_receipt(receipt, f"subscribing to {dest}")
        log.info("subscribed to %s (prefetch %d)", ", ".join(self.destinations), self.settings.prefetch)

    def _wait_receipt(self, receipt: str, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.receipts.get(timeout=0.2) == receipt:
                    return
            except queue.Empty:
                if not self.connected.is_set():
                    break
        raise BrokerUnavailable(f"{what}: no receipt from the broker within {timeout:.0f} s")

    def connect_with_backoff(self, stopping: threading.Event) -> bool:
        """Retry :meth:`connect` with exponential backoff and jitter until it works or we stop."""
        delay = self.settings.reconnect_initial
        while not stopping.is_set():
            try:
                self.connect()
                return True
            except BrokerUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                stopping.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.settings.reconnect_max)
        return False

    def is_connected(self) -> bool:
        return self.conn is not None and self.connected.is_set() and bool(self.conn.is_connected())

    def _current(self, delivery: Delivery) -> stomp.Connection12 | None:
        if delivery.generation != self.generation or not self.is_connected():
            # The broker took the message back when that connection died; it will redeliver it.
            return None
        return self.conn

    def ack(self, delivery: Delivery) -> bool:
        conn = self._current(delivery)
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.ack(delivery.headers["ack"])
        except Exception as exc:  # StompException, OSError, or a frame without an ack id
            log.warning("ack of %s failed (%s): the broker will redeliver it", delivery.message_id, exc)
            return False
        return True

    def dead_letter(self, delivery: Delivery, reason: str, handler: str | None = None) -> str | None:
        """Move the message to the DLQ: the send and the ack in one broker transaction."""
        conn = self._current(delivery)
        if conn is None:
            return None
        dlq_id = uuid.uuid4().hex
        headers = {
            DLQ_ID: dlq_id,
            DLQ_REASON: header_safe(reason, 1000),
            DLQ_SOURCE: delivery.headers.get("destination", ""),
            DLQ_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            DLQ_ORIGINAL_ID: delivery.message_id,
            "persistent": "true",
        }
        if handler:
            headers[DLQ_HANDLER] = handler
        if "event_type" in delivery.headers:
            headers["event_type"] = header_safe(delivery.headers["event_type"], 200)
        if not self._move(conn, delivery, self.settings.dlq, headers, "dead-lettering"):
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
        conn = self._current(delivery)
        if conn is None:
            return False
        headers = {k: v for k, v in delivery.headers.items() if k not in _BROKER_HEADERS}
        headers[DELIVERIES] = str(deliveries)
        headers["persistent"] = "true"
        return self._move(conn, delivery, delivery.headers.get("destination", ""), headers, "requeueing")

    def _move(self, conn: stomp.Connection12, delivery: Delivery, to: str, headers: dict[str, str], what: str) -> bool:
        """Send ``delivery``'s body to ``to`` and ack the delivery, in one broker transaction."""
        if not to:
            log.warning("%s %s: no destination; the broker will redeliver it", what, delivery.message_id)
            return False
        try:
            with self._send_lock:
                tx = conn.begin()
                conn.send(to, delivery.body, headers=headers, transaction=tx)
                conn.ack(delivery.headers["ack"], transaction=tx)
                conn.commit(tx)
        except Exception as exc:  # whatever the frame held: the message stays with the broker
            log.warning("%s %s failed (%s): the broker will redeliver it", what, delivery.message_id, exc)
            return False
        return True

    def publish(self, destination: str, body: str, headers: dict[str, str]) -> None:
        if self.conn is None or not self.is_connected():
            raise BrokerUnavailable("not connected to the broker")
        receipt = uuid.uuid4().hex
        with self._send_lock:
            self.conn.send(destination, body, headers={**headers, "persistent": "true", "receipt": receipt})
        # Only the receipt says the broker stored it: the outbox must not mark it sent before.
        self._wait_receipt(receipt, f"publishing to {destination}")

    def close(self) -> None:
        """Disconnect: whatever was delivered and not acknowledged goes back to the queue."""
        conn, self.conn = self.conn, None
        self.connected.clear()
        if conn is not None:
            with contextlib.suppress(StompException, OSError):
                conn.disconnect()
