"""What an event is, and how a broker message becomes one (or is rejected with the reason).

hermes sends ``{"event_type", "payload", "created_at"}``; inlet's own events use the same
envelope plus an ``id`` (:mod:`inlet.event_contract`). Anything else is rejected here, before a handler sees it, with a
reason that names what is wrong, so that the message can go to the dead-letter queue.

Parsing is *total*: whatever the bytes (huge integers that ``int()`` refuses, nesting deep
enough to exhaust the stack, non-UTF-8, wrong types anywhere in the envelope or in the
payload fields handlers read), :func:`parse_message` returns an :class:`Event` or raises
:class:`BadEvent`, never anything else. A message is broker input anyone with a login can
write: one body that escaped as another exception would end ``inlet listen`` and, being
redelivered, end it again after every restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from inlet.event_contract import ENVELOPE_ALLOWED, ENVELOPE_REQUIRED

#: Payload fields that name the event's subject, in order of preference, for the ledger key.
_KEY_FIELDS = ("request-id", "rule_id", "rule-id", "id")
#: Payload fields handlers and routes read as text: when present they must be strings (or null).
STRING_FIELDS = ("scope", "name", "dataset", "rse", "dst-rse", "src-rse", "rule_id", "rule-id", "request-id")
#: Longest accepted value of those fields (Rucio's own limits are far below: names 250, scopes 25).
MAX_FIELD_CHARS = 1024
#: Deepest accepted nesting of the JSON document (hermes' envelope is 3 levels deep).
MAX_DEPTH = 32
#: Longest accepted integer literal: larger ones are no id, size or time of any event.
MAX_INT_DIGITS = 40
EVENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


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

    @cached_property
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
                    digits = m.group("run")
                    # ASCII only and bounded: int() takes other scripts' digits, and refuses
                    # (ValueError) strings of more than 4,300 digits.
                    if digits and digits.isascii() and digits.isdigit() and len(digits) <= 18:
                        return int(digits)
                    return None
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


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadEvent(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS} are accepted)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadEvent(f"number {text[:40]!r} is out of range")
    return value


def _constant(text: str) -> Any:
    raise BadEvent(f"{text} is not a JSON value")


_SURROGATE = re.compile("[\ud800-\udfff]")
#: Text decoded from valid UTF-8 holds surrogates only through such escapes: look for them first.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _check_shape(doc: Any, texts: bool = True) -> None:
    """Iteratively (no recursion): nesting at most MAX_DEPTH, and text that is real Unicode.

    JSON's ``\\udcff`` escapes decode to lone surrogates, which no UTF-8 encoder (database
    driver, STOMP frame) accepts: such text would fail later, deep in a handler.
    """
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if texts and _SURROGATE.search(value):
                raise BadEvent("text holds a lone surrogate (an invalid \\uXXXX escape)")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise BadEvent(f"JSON nested deeper than {MAX_DEPTH} levels")
            children = [*value, *value.values()] if isinstance(value, dict) else value
            kinds = (dict, list, str) if texts else (dict, list)
            stack.extend((child, depth + 1) for child in children if isinstance(child, kinds))


def _brief(value: Any) -> str:
    """A short, always-printable description of a value for a reason line."""
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:60]) + ("..." if len(text) > 60 else "")


def parse_message(body: bytes, headers: dict[str, str], max_bytes: int) -> Event:
    """Turn a broker message into an :class:`Event`, or raise :class:`BadEvent` with the reason.

    Never raises anything else (property-tested in tests/unit/listener/test_events_hostile.py).
    """
    try:
        return _parse(body, headers, max_bytes)
    except BadEvent:
        raise
    except RecursionError:
        raise BadEvent("JSON nested too deeply to parse") from None
    except Exception as exc:  # the boundary: any other failure is this message's fault too
        raise BadEvent(f"unparseable message ({type(exc).__name__}: {str(exc)[:200]})") from None


def _parse(body: bytes, headers: dict[str, str], max_bytes: int) -> Event:
    if not isinstance(body, bytes | bytearray):
        raise BadEvent(f"the body is {type(body).__name__}, not bytes")
    if len(body) > max_bytes:
        raise BadEvent(f"oversized body: {len(body)} bytes > [listener] max_body_bytes = {max_bytes}; not parsed")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEvent(f"body is not UTF-8: {exc}") from None
    try:
        doc = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _check_shape(doc, texts=_ESCAPED_SURROGATE.search(text) is not None)
    if not isinstance(doc, dict):
        raise BadEvent(f"the body is JSON {type(doc).__name__}, not an object with {', '.join(ENVELOPE_REQUIRED)}")
    missing = [k for k in ENVELOPE_REQUIRED if k not in doc]
    if missing:
        raise BadEvent(f"missing field(s) {', '.join(missing)} (an event needs {', '.join(ENVELOPE_REQUIRED)})")
    unknown = sorted(set(doc) - ENVELOPE_ALLOWED)
    if unknown:
        shown = ", ".join(_brief(k)[1:-1] for k in unknown[:5])
        raise BadEvent(f"unknown field(s) {shown} (allowed: {', '.join(sorted(ENVELOPE_ALLOWED))})")
    event_type, payload, created_at = doc["event_type"], doc["payload"], doc["created_at"]
    if not isinstance(event_type, str) or not event_type:
        raise BadEvent(f"event_type must be a non-empty string, got {_brief(event_type)}")
    if not EVENT_TYPE.fullmatch(event_type):
        raise BadEvent(f"event_type {_brief(event_type)} is not a name (letters, digits, _ . : -; at most 64)")
    if not isinstance(payload, dict):
        raise BadEvent(f"payload must be a JSON object, got {type(payload).__name__}")
    if not isinstance(created_at, str) or len(created_at) > 64 or parse_time(created_at) is None:
        raise BadEvent(f"created_at must be a date-time string, got {_brief(created_at)}")
    event_id = doc.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id or len(event_id) > 255):
        raise BadEvent(f"id must be a non-empty string of at most 255 characters, got {_brief(event_id)}")
    for k in STRING_FIELDS:
        value = payload.get(k)
        if value is not None and not isinstance(value, str):
            raise BadEvent(f"payload field {k} must be a string, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            raise BadEvent(f"payload field {k} is {len(value)} characters long (at most {MAX_FIELD_CHARS})")
    event = Event(
        event_type=event_type.lower(),
        payload=payload,
        created_at=created_at,
        id=event_id,
        message_id=str(headers.get("message-id", "")),
        body=bytes(body),
        headers=headers,
    )
    _ = event.key  # computed here, inside the boundary, and kept (cached) for the handlers
    return event
