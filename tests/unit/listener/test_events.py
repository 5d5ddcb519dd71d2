from __future__ import annotations

import json
import re

import pytest

from inlet.event_contract import RUN_NUMBER, envelope
from inlet.listener.events import BadEvent, parse_message, parse_time

HERMES = {
    "event_type": "transfer-done",
    "payload": {"scope": "cygno", "name": "run00042_001.mid.gz", "dst-rse": "S3", "request-id": "abc"},
    "created_at": "2026-11-21 23:40:01.123456",
}


def parse(doc: object, max_bytes: int = 10_000) -> object:
    return parse_message(json.dumps(doc).encode(), {"message-id": "ID:1"}, max_bytes)


def test_a_hermes_message_becomes_an_event() -> None:
    ev = parse_message(json.dumps(HERMES).encode(), {"message-id": "ID:1"}, 10_000)
    got = (ev.event_type, ev.scope, ev.name, ev.rse, ev.message_id)
    assert got == ("transfer-done", "cygno", "run00042_001.mid.gz", "S3", "ID:1")
    created = ev.created()
    assert created is not None and created.microsecond == 123456
    assert ev.run_number(re.compile(RUN_NUMBER)) == 42


def test_the_ledger_key_survives_a_new_message_id_but_tells_events_apart() -> None:
    a = parse_message(json.dumps(HERMES).encode(), {"message-id": "ID:1"}, 10_000)
    resent = parse_message(json.dumps(HERMES, indent=2).encode(), {"message-id": "ID:2"}, 10_000)
    other = parse_message(json.dumps({**HERMES, "created_at": "2026-11-21 23:40:02"}).encode(), {}, 10_000)
    assert a.key == resent.key
    assert a.key != other.key
    assert a.key.startswith("transfer-done:abc:")
    assert len(a.key) <= 255


def test_inlet_events_are_keyed_by_their_id() -> None:
    env = envelope("daq-release", {"scope": "s", "name": "n"}, event_id="daq-release:s:n")
    ev = parse_message(json.dumps(env).encode(), {}, 10_000)
    assert ev.key == "daq-release:daq-release:s:n"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON: Expecting property name"),
        (b"\xff\xfe", "body is not UTF-8"),
        (b"[1, 2]", "the body is JSON list"),
        (json.dumps({"event_type": "x", "payload": {}}).encode(), "missing field(s) created_at"),
        (json.dumps({**HERMES, "extra": 1}).encode(), "unknown field(s) extra"),
        (json.dumps({**HERMES, "payload": [1]}).encode(), "payload must be a JSON object"),
        (json.dumps({**HERMES, "event_type": ""}).encode(), "event_type must be a non-empty string"),
        (json.dumps({**HERMES, "created_at": "yesterday"}).encode(), "created_at must be a date-time"),
        (json.dumps({**HERMES, "id": 7}).encode(), "id must be a non-empty string"),
    ],
)
def test_bad_messages_are_rejected_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BadEvent, match=re.escape(reason)):
        parse_message(body, {}, 10_000)


def test_oversized_bodies_are_rejected_unread() -> None:
    with pytest.raises(BadEvent, match=r"oversized body: 2001 bytes > \[listener\] max_body_bytes = 2000"):
        parse_message(b"x" * 2001, {}, 2000)


def test_a_missing_payload_field_is_a_bad_event() -> None:
    ev = parse_message(json.dumps(HERMES).encode(), {}, 10_000)
    with pytest.raises(BadEvent, match=r"lacks payload field\(s\) rse"):
        ev.require("scope", "rse")


def test_rucio_times_parse_as_utc() -> None:
    t = parse_time("2026-11-21 23:40:01")
    assert t is not None and t.tzinfo is not None and t.hour == 23
    assert parse_time("not a time") is None
    assert parse_time(None) is None
