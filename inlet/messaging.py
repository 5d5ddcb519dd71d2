"""inlet's one way to talk to the STOMP broker: log in, subscribe and confirm, send and confirm,
reconnect, and fail with one exception type.

Every part of inlet that speaks to ActiveMQ (the listener, its DLQ tools, the uploader's
publisher and subscription, the rehearsal's downloader, ``inlet events publish``, the tests
and benchmarks) goes through :class:`Connection`, so that they all behave alike:

- a login failure says which of two things went wrong (the broker is not there / it refused
  these credentials), because the operator's fix differs completely;
- ``subscribe()`` in stomp.py is asynchronous: a subscription counts only once the broker
  sent its receipt, and no receipt within the timeout is an error, never silence;
- a send with a receipt returns only once the broker stored the message (what an outbox
  must know before it marks a row sent);
- stomp.py does not reconnect by itself after the broker went away: :meth:`Connection.connect`
  reconnects and subscribes again, and :meth:`Connection.connect_with_backoff` retries it;
- every failure is a :class:`BrokerUnavailable`: an :class:`~inlet.errors.InletError` for the
  CLI's one handler, and a ``ConnectionError`` for the services' loops, which retry on those.

Messages are handed to one callback in stomp.py's receiver thread, as :class:`Message`; the
callback must not block (heart-beats are read on that thread too) nor raise.

A module of its own (not in ``inlet.listener``) because the uploader, the listener and the
rehearsal all use it, and the uploader and the listener never import each other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import stomp
from stomp.exception import StompException

from inlet.config import BrokerSettings
from inlet.errors import InletError

log = logging.getLogger(__name__)

#: Seconds to wait for the broker's receipt of a SUBSCRIBE or a SEND.
RECEIPT_TIMEOUT = 15.0
#: Seconds :meth:`Connection.close` waits for the broker to confirm a DISCONNECT.
CLOSE_WAIT = 2.0
#: Which of the broker's logins (``[broker]`` settings) a connection uses.
Role = Literal["inlet", "reader", "hermes"]
_FIX_UNREACHABLE = "start it (`inlet lake up`; `inlet lake status` shows it) or correct [broker] host/stomp_port"


class BrokerUnavailable(InletError, ConnectionError):
    """The broker could not be reached, refused us, or did not confirm a frame; one line says which.

    ``broker_error`` is the broker's own ERROR message, when it sent one (e.g. ActiveMQ's
    "User x is not authorized to write to: topic://...").
    """

    def __init__(self, problem: str, fix: str = "", broker_error: str = "") -> None:
        super().__init__(problem, fix)
        self.broker_error = broker_error


@dataclass(frozen=True)
class Message:
    """One MESSAGE frame. ``generation`` counts the connections: an ack id is valid only on its own."""

    headers: dict[str, str]
    body: bytes
    generation: int

    @property
    def message_id(self) -> str:
        return self.headers.get("message-id", "")

    @property
    def redelivered(self) -> bool:
        return self.headers.get("redelivered", "false") == "true"


@dataclass(frozen=True)
class Subscription:
    """A SUBSCRIBE that :meth:`Connection.connect` makes (again, after a reconnect) and confirms."""

    destination: str
    id: str
    ack: Literal["auto", "client", "client-individual"] = "auto"
    headers: Mapping[str, str] = field(default_factory=dict)


def json_documents(on_doc: Callable[[dict[str, Any]], None], what: str) -> Callable[[Message], None]:
    """A message callback that hands ``on_doc`` each body that is a JSON object, and never raises.

    It runs in stomp.py's receiver thread: anything a message holds that escaped from here
    (ValueError covers 5,001-digit integers, RecursionError deep nesting) would end it, and
    with it the subscription. ``what`` names the messages in the log lines.
    """

    def on_message(message: Message) -> None:
        try:
            doc = json.loads(message.body)
        except (ValueError, RecursionError):
            log.warning("ignoring a message on %s that is not JSON: %.200r", what, message.body)
            return
        if not isinstance(doc, dict):
            return
        try:
            on_doc(doc)
        except Exception as exc:
            log.warning("ignoring an event on %s that could not be handled: %s: %.200s", what, type(exc).__name__, exc)

    return on_message


class _Frames(stomp.ConnectionListener):  # type: ignore[misc]
    """The connection's listener: messages to the callback, ERROR frames and the lost link noted."""

    def __init__(self, owner: Connection, generation: int) -> None:
        self.owner = owner
        self.generation = generation
        self.errors: list[str] = []
        self.error_seen = threading.Event()
        self.lost = threading.Event()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        if self.owner.on_message is None:
            return
        body = frame.body if isinstance(frame.body, bytes) else str(frame.body or "").encode()
        self.owner.on_message(Message(dict(frame.headers), body, self.generation))

    def on_error(self, frame: stomp.utils.Frame) -> None:
        message = str(frame.headers.get("message", "")).strip()
        self.errors.append(message)
        self.error_seen.set()
        if self.owner.logged_in:  # during the login, the refusal is raised as one line instead
            log.error("broker error: %s %s", message, frame.body[:500] if frame.body else "")

    def on_heartbeat_timeout(self) -> None:
        log.warning("broker heart-beat missed: the connection is considered dead")

    def on_disconnected(self) -> None:
        self.lost.set()


class _Receipt(stomp.listener.WaitingListener):  # type: ignore[misc]
    """stomp.py's receipt waiter, with a timeout, and ended early by an ERROR or a lost link."""

    def __init__(self, receipt: str) -> None:
        super().__init__(receipt)
        self.error: str | None = None

    def on_error(self, frame: stomp.utils.Frame) -> None:
        # ActiveMQ names the frame it refused in receipt-id; an ERROR naming none ends the link.
        if frame.headers.get("receipt-id", self.receipt) == self.receipt:
            with self.receipt_condition:
                self.error = str(frame.headers.get("message", "ERROR")).strip()
                self.receipt_condition.notify_all()

    def on_disconnected(self) -> None:
        super().on_disconnected()
        with self.receipt_condition:
            self.receipt_condition.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.receipt_condition:
            self.receipt_condition.wait_for(lambda: self.received or self.disconnected or self.error, timeout)
            return bool(self.received)


class Connection:
    """One login to the broker with its confirmed subscriptions; reconnectable.

    ``role`` picks the credentials from ``[broker]``: ``inlet`` (the services), ``reader``
    (read-only, e.g. the rehearsal's downloader) or ``hermes``.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        *,
        role: Role = "inlet",
        subscriptions: list[Subscription] | None = None,
        on_message: Callable[[Message], None] | None = None,
        heartbeat_ms: int = 0,
        receipt_timeout: float = RECEIPT_TIMEOUT,
        client_id: str | None = None,
    ) -> None:
        self.broker = broker
        #: STOMP ``client-id`` sent on CONNECT: ActiveMQ keys durable topic subscriptions on it
        #: (with ``activemq.subscriptionName``), and lets one connection at a time hold it.
        self.client_id = client_id
        self.role = role
        self.subscriptions = list(subscriptions or [])
        self.on_message = on_message
        self.heartbeat_ms = heartbeat_ms
        self.receipt_timeout = receipt_timeout
        #: Incremented by every :meth:`connect`: a :class:`Message` says which connection brought it.
        self.generation = 0
        self.logged_in = False
        self._conn: stomp.Connection12 | None = None
        self._frames: _Frames | None = None
        self._send_lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"{self.broker.host}:{self.broker.stomp_port}"

    def _credentials(self) -> tuple[str, str, str]:
        b = self.broker
        if self.role == "reader":
            return b.reader_username, b.reader_password, "[broker] reader_username/reader_password"
        if self.role == "hermes":
            return b.hermes_username, b.hermes_password, "[broker] hermes_username/hermes_password"
        return b.username, b.password, "[broker] username/password"

    # -- connecting ----------------------------------------------------------------------------
    def connect(self) -> None:
        """(Re)connect, log in and make every subscription; returns once the broker confirmed each."""
        self.close()
        self.generation += 1
        # STOMP 1.2: every MESSAGE carries an `ack` id, which ACK and NACK name.
        conn = stomp.Connection12(
            [(self.broker.host, self.broker.stomp_port)],
            heartbeats=(self.heartbeat_ms, self.heartbeat_ms),
            # A busy 2-core host can delay the broker's beat: allow three periods before giving up.
            heart_beat_receive_scale=3.0,
            reconnect_attempts_max=1,
            auto_decode=False,
            # The socket's timeout bounds every read, not just the connect: only a connection
            # with heart-beats is never silent that long (an idle subscriber would be dropped).
            timeout=10 if self.heartbeat_ms else None,
        )
        frames = _Frames(self, self.generation)
        conn.set_listener("inlet", frames)
        self._login(conn, frames)
        self._conn, self._frames, self.logged_in = conn, frames, True
        try:
            for sub in self.subscriptions:
                self._subscribe(conn, sub)
        except BaseException:
            self.close()
            raise

    def _subscribe(self, conn: stomp.Connection12, sub: Subscription) -> None:
        self._confirmed(
            f"the broker at {self.where} did not confirm the subscription to {sub.destination}",
            lambda receipt: conn.subscribe(
                sub.destination, id=sub.id, ack=sub.ack, headers={**sub.headers, "receipt": receipt}
            ),
        )

    def _login(self, conn: stomp.Connection12, frames: _Frames) -> None:
        username, password, what = self._credentials()
        # stomp.py logs each failed attempt itself; the one line raised below says it all.
        stomp_log = logging.getLogger("stomp.py")
        level = stomp_log.level
        stomp_log.setLevel(logging.ERROR)
        try:
            headers = {"client-id": self.client_id} if self.client_id else {}
            conn.connect(username, password, wait=True, headers=headers)
        except (StompException, OSError) as exc:
            # The ERROR frame arrives on the receiver thread, just before the socket closes.
            frames.error_seen.wait(0.5)
            if frames.errors:
                raise BrokerUnavailable(
                    f"the broker at {self.where} refused the login of {username!r}: {frames.errors[0][:200]}",
                    f"check {what}",
                    frames.errors[0],
                ) from None
            raise BrokerUnavailable(
                f"cannot reach the broker at {self.where} ({exc or 'no STOMP answer'})", _FIX_UNREACHABLE
            ) from None
        finally:
            stomp_log.setLevel(level)
        if not conn.is_connected():
            raise BrokerUnavailable(f"the broker at {self.where} refused the login of {username!r}", f"check {what}")

    def connect_with_backoff(self, stopping: threading.Event, initial: float, maximum: float) -> bool:
        """Retry :meth:`connect` with exponential backoff and jitter until it works (True) or we stop."""
        delay = initial
        while not stopping.is_set():
            try:
                self.connect()
                return True
            except BrokerUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc.problem, delay)
                stopping.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, maximum)
        return False

    def is_connected(self) -> bool:
        conn, frames = self._conn, self._frames  # once each: another thread may clear them
        return conn is not None and frames is not None and not frames.lost.is_set() and bool(conn.is_connected())

    def close(self) -> None:
        """Disconnect: whatever was delivered and not acknowledged goes back to the queue.

        Returns once the broker confirmed the DISCONNECT (at most ``CLOSE_WAIT`` s): until then
        the broker still counts the connection, and holds its ``client_id`` (a durable
        subscriber that reconnects at once under the same id would be refused).
        """
        conn, frames = self._conn, self._frames
        self._conn, self._frames, self.logged_in = None, None, False
        if conn is not None:
            with contextlib.suppress(StompException, OSError):
                conn.disconnect()
            receiver = getattr(getattr(conn, "transport", None), "receiver_thread", None)
            if frames is not None and threading.current_thread() is not receiver:
                frames.lost.wait(CLOSE_WAIT)

    def __enter__(self) -> Connection:
        if not self.is_connected():
            self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- frames --------------------------------------------------------------------------------
    def _live(self) -> stomp.Connection12:
        conn = self._conn  # read once: a disconnect on another thread sets it to None at any moment
        if conn is None or not self.is_connected():
            raise BrokerUnavailable(f"not connected to the broker at {self.where}", _FIX_UNREACHABLE)
        return conn

    def _transmit(self, what: str, send: Callable[[], None]) -> None:
        try:
            with self._send_lock:
                send()
        except (StompException, OSError) as exc:
            raise BrokerUnavailable(f"{what}: {exc or type(exc).__name__}", _FIX_UNREACHABLE) from None

    def _confirmed(self, what: str, send: Callable[[str], None]) -> None:
        """``send(receipt)`` a frame that asks for that receipt; return once the broker sent it.

        ``what`` says what the broker did not do, for the error.
        """
        conn = self._live()
        receipt = uuid.uuid4().hex
        waiter = _Receipt(receipt)
        conn.set_listener(f"receipt-{receipt}", waiter)
        try:
            self._transmit(what, lambda: send(receipt))
            if waiter.wait(self.receipt_timeout):
                return
            if waiter.error is not None:
                fix = "check the [broker] login this connection uses, and the broker's authorization entries"
                raise BrokerUnavailable(f"{what}: {waiter.error[:200]}", fix, waiter.error)
            if waiter.disconnected:
                raise BrokerUnavailable(f"{what}: the connection was lost", _FIX_UNREACHABLE)
            raise BrokerUnavailable(f"{what} within {self.receipt_timeout:g} s", _FIX_UNREACHABLE)
        finally:
            with contextlib.suppress(KeyError):
                conn.remove_listener(f"receipt-{receipt}")

    def send(
        self, destination: str, body: str | bytes, headers: Mapping[str, str] | None = None, *, receipt: bool = True
    ) -> None:
        """Send a persistent message; with ``receipt``, return only once the broker stored it.

        Without one, the next send with a receipt confirms this one too (the broker handles a
        connection's frames in order): bulk senders ask for a receipt on the last frame only.
        """
        frame_headers = {**(headers or {}), "persistent": "true"}
        if not receipt:
            conn = self._live()
            self._transmit(f"sending to {destination}", lambda: conn.send(destination, body, headers=frame_headers))
            return
        self._confirmed(
            f"the broker at {self.where} did not confirm the message to {destination}",
            lambda r: self._live().send(destination, body, headers={**frame_headers, "receipt": r}),
        )

    def send_all(self, destination: str, messages: Iterable[tuple[str | bytes, Mapping[str, str]]]) -> int:
        """Send each (body, headers) as :meth:`send` does; return once the broker stored them all.

        Only the last one asks for a receipt, which the broker sends after it handled every
        frame before it on this connection: one round trip for the lot. Returns how many.
        """
        held: tuple[str | bytes, Mapping[str, str]] | None = None
        count = 0
        for item in messages:
            if held is not None:
                self.send(destination, *held, receipt=False)
            held, count = item, count + 1
        if held is not None:
            self.send(destination, *held)
        return count

    def unsubscribe(self, sub: Subscription) -> None:
        """End ``sub`` and stop making it on reconnects; returns once the broker confirmed it.

        With ``activemq.subscriptionName`` in its headers (a durable topic subscription, on a
        connection with the same ``client_id``), ActiveMQ also forgets the subscription and the
        messages it was keeping.
        """
        conn = self._live()
        self._confirmed(
            f"the broker at {self.where} did not confirm the end of the subscription to {sub.destination}",
            lambda receipt: conn.unsubscribe(id=sub.id, headers={**sub.headers, "receipt": receipt}),
        )
        self.subscriptions = [s for s in self.subscriptions if s.id != sub.id]

    def ack(self, message: Message) -> None:
        """Acknowledge ``message``; raises if it came on an earlier connection (the broker took it back)."""
        conn = self._of(message)
        with self._send_lock:
            conn.ack(message.headers["ack"])

    def send_and_ack(self, message: Message, destination: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Send ``body`` to ``destination`` and ack ``message``, in one broker transaction.

        Moving a message this way (to the DLQ, back to its queue) neither loses it nor leaves it
        in both places, whatever happens in between.
        """
        conn = self._of(message)
        with self._send_lock:
            tx = conn.begin()
            conn.send(destination, body, headers={**headers, "persistent": "true"}, transaction=tx)
            conn.ack(message.headers["ack"], transaction=tx)
            conn.commit(tx)

    def _of(self, message: Message) -> stomp.Connection12:
        if message.generation != self.generation:
            raise BrokerUnavailable(f"message {message.message_id} came on an earlier connection to {self.where}")
        return self._live()
