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
from dataclasses import dataclass

from inlet.config import BrokerSettings, ListenerSettings
from inlet.errors import InletError
from inlet.listener.broker import DELIVERIES, DLQ_AT, DLQ_HANDLER, DLQ_ID, DLQ_ORIGINAL_ID, DLQ_REASON, DLQ_SOURCE
from inlet.messaging import BrokerUnavailable, Connection, Message, Subscription


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


class DeadLetterQueue:
    def __init__(self, broker: BrokerSettings, settings: ListenerSettings, timeout: float = 10.0) -> None:
        self.broker = broker
        self.settings = settings
        self.timeout = timeout

    def _open(self, subscription: Subscription) -> tuple[Connection, queue.Queue[Message]]:
        """A connection whose ``subscription`` the broker confirmed, and the queue its messages go to."""
        frames: queue.Queue[Message] = queue.Queue()
        conn = Connection(
            self.broker, subscriptions=[subscription], on_message=frames.put, receipt_timeout=self.timeout
        )
        conn.connect()
        return conn, frames

    def letters(self) -> list[DeadLetter]:
        """Every message in the DLQ, oldest first, without consuming any."""
        browse = Subscription(self.settings.dlq, id="browse", headers={"browser": "true"})
        conn, frames = self._open(browse)
        try:
            out: list[DeadLetter] = []
            while True:
                try:
                    message = frames.get(timeout=self.timeout)
                except queue.Empty:
                    what = f"browsing {self.settings.dlq}: the broker did not finish within {self.timeout:.0f} s"
                    raise BrokerUnavailable(what, "check that the broker runs (`inlet lake status`)") from None
                # ActiveMQ ends a browse with an empty message that carries browser:end.
                if message.headers.get("browser") == "end":
                    return out
                out.append(_letter(message.headers, message.body))
        finally:
            conn.close()

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
        ids = ", ".join(f"'{i}'" for i in wanted)
        replay = Subscription(
            self.settings.dlq, id="replay", ack="client-individual", headers={"selector": f"{DLQ_ID} IN ({ids})"}
        )
        conn, frames = self._open(replay)
        done: list[str] = []
        try:
            deadline = time.monotonic() + self.timeout
            while len(done) < len(wanted) and time.monotonic() < deadline:
                try:
                    message = frames.get(timeout=0.5)
                except queue.Empty:
                    continue
                letter = _letter(message.headers, message.body)
                keep = {
                    k: v
                    for k, v in message.headers.items()
                    if k == "event_type"
                    or (k.startswith("inlet_") and not k.startswith("inlet_dlq") and k != DELIVERIES)
                }
                keep["inlet_replayed_from"] = letter.dlq_id
                conn.send_and_ack(message, letter.source, body if body is not None else message.body, keep)
                done.append(letter.dlq_id)
        finally:
            conn.close()
        missing = sorted(set(wanted) - set(done))
        if missing:
            raise DLQError(
                f"replayed {len(done)} of {len(wanted)}; not received within {self.timeout:.0f} s: "
                f"{', '.join(missing)} (another operator may have replayed them); run the command again"
            )
        return done
