"""The dead-letter queue seen by an operator: list, show, replay (optionally with a fixed body).

Listing uses an ActiveMQ queue *browser* (``browser: true``), which reads without
consuming. Replaying consumes only the chosen messages, picked by a selector on the
``inlet_dlq_id`` header the listener stamped on them, and moves each back to the queue it
came from in one broker transaction (send + ack), so that a crash during a replay neither
loses a message nor leaves it in both places.
"""

from __future__ import annotations

import queue
import time
import uuid
from dataclasses import dataclass

import stomp

from inlet.config import BrokerSettings, ListenerSettings
from inlet.errors import InletError
from inlet.listener.broker import (
    DELIVERIES,
    DLQ_AT,
    DLQ_HANDLER,
    DLQ_ID,
    DLQ_ORIGINAL_ID,
    DLQ_REASON,
    DLQ_SOURCE,
    connection,
)
from inlet.stomp_login import BrokerLoginError, login


class DLQError(InletError):
    """An operator request that cannot be carried out; the message says what to do."""


@dataclass(frozen=True)
class DeadLetter:
    dlq_id: str
    reason: str
    source: str
    at: str
    handler: str
    original_message_id: str
    event_type: str
    body: bytes
    headers: dict[str, str]


def _letter(headers: dict[str, str], body: bytes) -> DeadLetter:
    return DeadLetter(
        dlq_id=headers.get(DLQ_ID, ""),
        reason=headers.get(DLQ_REASON, ""),
        source=headers.get(DLQ_SOURCE, ""),
        at=headers.get(DLQ_AT, ""),
        handler=headers.get(DLQ_HANDLER, ""),
        original_message_id=headers.get(DLQ_ORIGINAL_ID, ""),
        event_type=headers.get("event_type", ""),
        body=body,
        headers=headers,
    )


class _Collect(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.frames: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        body = frame.body if isinstance(frame.body, bytes) else str(frame.body).encode()
        self.frames.put((dict(frame.headers), body))

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers.get("receipt-id", ""))


class DeadLetterQueue:
    def __init__(self, broker: BrokerSettings, settings: ListenerSettings, timeout: float = 10.0) -> None:
        self.broker = broker
        self.settings = settings
        self.timeout = timeout

    def _open(self) -> tuple[stomp.Connection12, _Collect]:
        conn = connection(self.broker)
        collect = _Collect()
        conn.set_listener("dlq", collect)
        b = self.broker
        try:
            login(conn, b.host, b.stomp_port, b.username, b.password)
        except BrokerLoginError as exc:
            raise DLQError(exc.problem, exc.fix) from None
        return conn, collect

    def letters(self) -> list[DeadLetter]:
        """Every message in the DLQ, oldest first, without consuming any."""
        conn, collect = self._open()
        try:
            conn.subscribe(self.settings.dlq, id="browse", ack="auto", headers={"browser": "true"})
            out: list[DeadLetter] = []
            while True:
                try:
                    headers, body = collect.frames.get(timeout=self.timeout)
                except queue.Empty:
                    raise DLQError(f"browsing {self.settings.dlq}: the broker did not finish within "
                                   f"{self.timeout:.0f} s") from None  # fmt: skip
                # ActiveMQ ends a browse with an empty message that carries browser:end.
                if headers.get("browser") == "end":
                    return out
                out.append(_letter(headers, body))
        finally:
            conn.disconnect()

    def show(self, dlq_id: str) -> DeadLetter:
        for letter in self.letters():
            if letter.dlq_id == dlq_id or (letter.dlq_id.startswith(dlq_id) and len(dlq_id) >= 6):
                return letter
        raise DLQError(f"no message {dlq_id!r} in {self.settings.dlq}; `inlet events dlq list` shows the ids")

    def replay(self, dlq_ids: list[str], body: bytes | None = None) -> list[str]:
        """Move the given messages back to their source queue (with ``body`` instead, if given)."""
        letters = {letter.dlq_id: letter for letter in self.letters()}
        wanted = []
        for given in dlq_ids:
            matches = [i for i in letters if i == given or (len(given) >= 6 and i.startswith(given))]
            if len(matches) != 1:
                raise DLQError(
                    f"{given!r} names {len(matches)} messages in {self.settings.dlq}; "
                    "give an id from `inlet events dlq list`"
                )
            wanted.append(matches[0])
        if body is not None and len(wanted) != 1:
            raise DLQError("a replacement body applies to one message: name exactly one id with --body")
        for i in wanted:
            if not letters[i].source:
                raise DLQError(f"message {i} has no {DLQ_SOURCE} header: cannot tell where to replay it")
        if not wanted:
            return []
        conn, collect = self._open()
        done: list[str] = []
        try:
            ids = ", ".join(f"'{i}'" for i in wanted)
            receipt = uuid.uuid4().hex
            conn.subscribe(
                self.settings.dlq,
                id="replay",
                ack="client-individual",
                headers={"selector": f"{DLQ_ID} IN ({ids})", "receipt": receipt},
            )
            deadline = time.monotonic() + self.timeout
            while len(done) < len(wanted) and time.monotonic() < deadline:
                try:
                    headers, original = collect.frames.get(timeout=0.5)
                except queue.Empty:
                    continue
                letter = _letter(headers, original)
                keep = {
                    k: v
                    for k, v in headers.items()
                    if k == "event_type"
                    or (k.startswith("inlet_") and not k.startswith("inlet_dlq") and k != DELIVERIES)
                }
                keep["persistent"] = "true"
                keep["inlet_replayed_from"] = letter.dlq_id
                tx = conn.begin()
                conn.send(letter.source, body if body is not None else original, headers=keep, transaction=tx)
                conn.ack(headers["ack"], transaction=tx)
                conn.commit(tx)
                done.append(letter.dlq_id)
        finally:
            conn.disconnect()
        missing = sorted(set(wanted) - set(done))
        if missing:
            raise DLQError(
                f"replayed {len(done)} of {len(wanted)}; not received within {self.timeout:.0f} s: "
                f"{', '.join(missing)} (another operator may have replayed them); run the command again"
            )
        return done
