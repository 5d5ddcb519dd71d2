"""What an event is, and how a broker message becomes one (or is rejected with the reason).

hermes sends ``{"event_type", "payload", "created_at"}``; inlet's own events use the same
envelope plus an ``id``. Anything else is rejected here, before a handler sees it, with a
reason that names what is wrong, so that the message can go to the dead-letter queue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

ENVELOPE_REQUIRED = ("event_type", "payload", "created_at")
ENVELOPE_ALLOWED = frozenset({*ENVELOPE_REQUIRED, "id"})

#: Payload fields that name the event's subject, in order of preference, for the ledger key.
_KEY_FIELDS = ("request-id", "rule_id", "rule-id", "id")


class BadEvent(Exception):
    """A message that no retry can fix: it goes to the DLQ at once with this reason."""


@dataclass(frozen=True)
class Event:
    event_type: str
    payload: dict[str, Any]
    created_at: str
    #: Only inlet's own events carry one.
    id: str | None = None
    message_id: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The ledger key: the same for every delivery of this event, different for other events.

        The broker's message-id is not enough: hermes re-sends a message with a *new*
        message-id if it crashed between sending and deleting it. The subject id from the
        payload (request, rule) plus a digest of the whole envelope is stable across both
        kinds of duplicate and still tells apart two events about the same rule.
        """
        if self.id:
            return f"{self.event_type}:{self.id}"[:255]
        canonical = json.dumps(
            {"event_type": self.event_type, "payload": self.payload, "created_at": self.created_at},
            sort_keys=True,
            separators=(",", ":"),
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        subject = next((str(self.payload[k]) for k in _KEY_FIELDS if self.payload.get(k)), "")
        return f"{self.event_type}:{subject}:{digest}"[:255]

    @property
    def scope(self) -> str | None:
        value = self.payload.get("scope")
        return str(value) if value is not None else None

    @property
    def name(self) -> str | None:
        value = self.payload.get("name")
        return str(value) if value is not None else None

    @property
    def dataset(self) -> str | None:
        """The dataset the event is about: payload ``dataset`` (transfers) else the DID name."""
        value = self.payload.get("dataset") or self.payload.get("name")
        return str(value) if value else None

    @property
    def rse(self) -> str | None:
        value = self.payload.get("rse") or self.payload.get("dst-rse")
        return str(value) if value else None

    def created(self) -> dt.datetime | None:
        return parse_time(self.created_at)

    def run_number(self, pattern: re.Pattern[str]) -> int | None:
        for candidate in (self.name, self.payload.get("dataset")):
            if candidate:
                m = pattern.search(str(candidate))
                if m:
                    return int(m.group("run"))
        return None

    def require(self, *keys: str) -> list[Any]:
        """The payload values of ``keys``; a missing one makes the event bad (not retryable)."""
        missing = [k for k in keys if self.payload.get(k) in (None, "")]
        if missing:
            raise BadEvent(f"{self.event_type} event lacks payload field(s) {', '.join(missing)}")
        return [self.payload[k] for k in keys]


def parse_time(text: Any) -> dt.datetime | None:
    """Rucio's times ('2026-11-21 23:40:01.123456', ISO with T, with or without zone) as aware UTC."""
    if not text or not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def parse_message(body: bytes, headers: dict[str, str], max_bytes: int) -> Event:
    """Turn a broker message into an :class:`Event`, or raise :class:`BadEvent` with the reason."""
    if len(body) > max_bytes:
        raise BadEvent(f"oversized body: {len(body)} bytes > [listener] max_body_bytes = {max_bytes}; not parsed")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEvent(f"body is not UTF-8: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise BadEvent(f"the body is JSON {type(doc).__name__}, not an object with {', '.join(ENVELOPE_REQUIRED)}")
    missing = [k for k in ENVELOPE_REQUIRED if k not in doc]
    if missing:
        raise BadEvent(f"missing field(s) {', '.join(missing)} (an event needs {', '.join(ENVELOPE_REQUIRED)})")
    unknown = sorted(set(doc) - ENVELOPE_ALLOWED)
    if unknown:
        raise BadEvent(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(ENVELOPE_ALLOWED))})")
    event_type, payload, created_at = doc["event_type"], doc["payload"], doc["created_at"]
    if not isinstance(event_type, str) or not event_type:
        raise BadEvent(f"event_type must be a non-empty string, got {event_type!r}")
    if not isinstance(payload, dict):
        raise BadEvent(f"payload must be a JSON object, got {type(payload).__name__}")
    if not isinstance(created_at, str) or parse_time(created_at) is None:
        raise BadEvent(f"created_at must be a date-time string, got {created_at!r}")
    event_id = doc.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id):
        raise BadEvent(f"id must be a non-empty string, got {event_id!r}")
    return Event(
        event_type=event_type.lower(),
        payload=payload,
        created_at=created_at,
        id=event_id,
        message_id=headers.get("message-id", ""),
        body=body,
        headers=headers,
    )


def make_inlet_event(event_type: str, payload: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """The envelope of an event inlet publishes itself (same shape as hermes', plus ``id``)."""
    return {
        "event_type": event_type,
        "payload": payload,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "id": event_id or uuid.uuid4().hex,
    }
