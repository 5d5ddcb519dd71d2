"""inlet's own events on ``[broker] inlet_topic``: publishing ``file-registered`` and
``file-quarantined``, receiving ``daq-release``.

Rucio emits nothing when a file is registered (rucio#8694), so the uploader says it itself,
right after registration. The envelope is the one hermes uses plus an ``id``
(``{"event_type", "payload", "created_at", "id"}``), with the same id for every send of one
file's event, so that a consumer that sees it twice acts once.

``file-quarantined`` is the uploader's alarm: the listener's default routes hand it to its
alarm handler (webhook). The uploader never imports the listener; they meet on the topic.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import stomp

from inlet.config import BrokerSettings
from inlet.stomp_login import login

log = logging.getLogger(__name__)

FILE_REGISTERED = "file-registered"
FILE_QUARANTINED = "file-quarantined"
#: Published by the listener once every rule of a file is OK (inlet.listener's release handler).
DAQ_RELEASE = "daq-release"


def envelope(event_type: str, payload: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "payload": payload,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "id": event_id,
    }


def file_registered_id(scope: str, name: str) -> str:
    return f"{FILE_REGISTERED}:{scope}:{name}"


def file_quarantined(info: dict[str, Any], **context: Any) -> dict[str, Any]:
    """The event for one quarantine (``info``: the reason file's content), with its run/stream if known.

    Every quarantine is its own event (the same name may be quarantined again later), so the
    id is drawn once here and kept for every send of this event.
    """
    payload = {**info, "name": str(info.get("source", "")).rsplit("/", 1)[-1], "host": socket.gethostname()}
    payload.update({k: v for k, v in context.items() if v is not None})
    return envelope(FILE_QUARANTINED, payload, f"{FILE_QUARANTINED}:{uuid.uuid4().hex}")


def _connect(broker: BrokerSettings) -> stomp.Connection12:
    conn = stomp.Connection12([(broker.host, broker.stomp_port)], reconnect_attempts_max=1)
    login(conn, broker.host, broker.stomp_port, broker.username, broker.password)
    return conn


class Publisher:
    """One STOMP connection per process, reopened after any failure."""

    def __init__(self, broker: BrokerSettings) -> None:
        self.broker = broker
        self._conn: stomp.Connection12 | None = None
        self._lock = threading.Lock()

    def publish(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or not self._conn.is_connected():
                        self._conn = _connect(self.broker)
                    for ev in events:
                        self._conn.send(
                            destination=self.broker.inlet_topic,
                            body=json.dumps(ev),
                            content_type="application/json",
                            headers={"event_type": ev["event_type"], "inlet_event_id": ev["id"], "persistent": "true"},
                        )
                    return
                except Exception:
                    self.close()
                    if attempt == 2:
                        raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception as exc:  # closing a broken connection: nothing left to do
                log.debug("closing the STOMP connection: %s", exc)


class _Listener(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.disconnected = threading.Event()

    def on_message(self, frame: Any) -> None:
        # stomp.py's receiver thread: nothing a message holds may escape from here (ValueError
        # covers 5,001-digit integers, RecursionError deep nesting), or the subscription dies.
        try:
            doc = json.loads(frame.body)
        except (ValueError, RecursionError):
            log.warning("ignoring a message on the inlet topic that is not JSON")
            return
        if isinstance(doc, dict):
            try:
                self.on_event(doc)
            except Exception as exc:
                log.warning("ignoring an inlet event that could not be handled: %s: %.200s", type(exc).__name__, exc)

    def on_disconnected(self) -> None:
        self.disconnected.set()


#: Seconds to wait for the broker to confirm a subscription.
SUBSCRIBE_TIMEOUT = 10.0


class Subscription:
    """Receive inlet events (a non-durable topic subscription; the poller covers what it misses)."""

    def __init__(self, broker: BrokerSettings, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.broker = broker
        self.listener = _Listener(on_event)
        self.conn: stomp.Connection12 | None = None

    def open(self) -> None:
        self.listener.disconnected.clear()
        conn = stomp.Connection12([(self.broker.host, self.broker.stomp_port)], reconnect_attempts_max=1)
        conn.set_listener("inlet-uploader", self.listener)
        login(conn, self.broker.host, self.broker.stomp_port, self.broker.username, self.broker.password)
        # A receipt of this subscription's own: until the broker confirms it, events sent to the
        # topic may not reach us, and the caller falls back to polling and tries again.
        rid = f"inlet-uploader-{uuid.uuid4().hex}"
        receipt = threading.Event()

        class _ReceiptSeen(stomp.ConnectionListener):  # type: ignore[misc]
            def on_receipt(self, frame: Any) -> None:
                if frame.headers.get("receipt-id") == rid:
                    receipt.set()

        conn.set_listener("receipt", _ReceiptSeen())
        conn.subscribe(self.broker.inlet_topic, id="inlet-uploader", ack="auto", headers={"receipt": rid})
        if not receipt.wait(SUBSCRIBE_TIMEOUT):
            with contextlib.suppress(Exception):
                conn.disconnect()
            raise ConnectionError(
                f"the broker at {self.broker.host}:{self.broker.stomp_port} did not confirm the subscription to "
                f"{self.broker.inlet_topic} within {SUBSCRIBE_TIMEOUT:g} s"
            )
        self.conn = conn

    @property
    def alive(self) -> bool:
        return self.conn is not None and self.conn.is_connected()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except Exception as exc:
                log.debug("closing the STOMP subscription: %s", exc)
            self.conn = None
