"""Message parsing is total: any bytes, any JSON, any headers give an Event or BadEvent, nothing else.

A message that made parse_message raise anything else would end ``inlet listen``, and, being
redelivered, end it again after every restart (issue 13: a 5,001-digit integer did).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inlet.event_contract import RUN_NUMBER
from inlet.listener.events import STRING_FIELDS, BadEvent, Event, parse_message

MAX = 262_144
RUN = re.compile(RUN_NUMBER)


def total(body: bytes, headers: dict[str, str] | None = None) -> Event | BadEvent:
    """Parse, then use the event as the listener and its handlers do: nothing may raise but BadEvent."""
    try:
        ev = parse_message(body, headers or {}, MAX)
    except BadEvent as exc:
        reason = str(exc)
        assert reason, "a rejection names its reason"
        return exc
    assert isinstance(ev.key, str) and len(ev.key) <= 255
    ev.created()
    ev.run_number(RUN)
    for value in (ev.scope, ev.name, ev.dataset, ev.rse):
        assert value is None or isinstance(value, str)
    for k in STRING_FIELDS:
        with contextlib.suppress(BadEvent):
            ev.require(k)
    return ev


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
headers = st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=5)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), headers)
def test_any_bytes_parse_or_are_rejected(body: bytes, hdrs: dict[str, str]) -> None:
    total(body, hdrs)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_document_parses_or_is_rejected(doc: Any) -> None:
    total(json.dumps(doc).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=json_values | st.text(max_size=80),
    payload=st.dictionaries(st.sampled_from([*STRING_FIELDS, "id", "bytes", "x"]), json_values, max_size=8),
    created_at=json_values | st.just("2026-11-21 23:40:01.123456"),
    event_id=st.none() | json_values,
)
def test_any_envelope_with_wrong_types_anywhere_parses_or_is_rejected(
    event_type: Any, payload: dict[str, Any], created_at: Any, event_id: Any
) -> None:
    doc: dict[str, Any] = {"event_type": event_type, "payload": payload, "created_at": created_at}
    if event_id is not None:
        doc["id"] = event_id
    result = total(json.dumps(doc).encode())
    if isinstance(result, Event):
        assert all(result.payload.get(k) is None or isinstance(result.payload[k], str) for k in STRING_FIELDS)


def _hermes(**payload: Any) -> dict[str, Any]:
    return {"event_type": "transfer-done", "payload": payload, "created_at": "2026-11-21 23:40:01"}


#: The hostile corpus of issue 13, also published to the real broker in
#: tests/integration/test_listener_hostile.py.
CORPUS: dict[str, bytes] = {
    "5001-digit integer": json.dumps(_hermes(scope="cygno", name="x", bytes=0))
    .replace('"bytes": 0', '"bytes": ' + "9" * 5001)
    .encode(),
    "100000 nested brackets": b'{"event_type": "t", "payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "100000 nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "non-UTF-8": b'{"event_type": "transfer-done", "payload": {"name": "\xff\xfe"}}',
    "huge float": json.dumps(_hermes(scope="c", name="n")).replace('"n"}', '"n", "t": 1e999}').encode(),
    "NaN": json.dumps(_hermes(scope="c", name="n")).replace('"n"}', '"n", "t": NaN}').encode(),
    "name is a dict": json.dumps(_hermes(scope="c", name={"a": 1}, **{"dst-rse": "TAPE"})).encode(),
    "rse is a list": json.dumps(_hermes(scope="c", name="n", **{"dst-rse": ["TAPE"]})).encode(),
    "scope is a number": json.dumps(_hermes(scope=7, name="n", **{"dst-rse": "TAPE"})).encode(),
    "event_type is an object": json.dumps({**_hermes(), "event_type": {"x": 1}}).encode(),
    "event_type is 10 kB": json.dumps({**_hermes(), "event_type": "t" * 10_000}).encode(),
    "created_at is a number": json.dumps({**_hermes(), "created_at": 10**30}).encode(),
    "payload is a string": json.dumps({**_hermes(), "payload": "x"}).encode(),
    "run number of 5000 digits": json.dumps(_hermes(scope="c", name="run" + "1" * 5000)).encode(),
    "run number of 1000 digits": json.dumps(_hermes(scope="c", name="run" + "1" * 1000)).encode(),
    "run number in other digits": json.dumps(_hermes(scope="c", name="run\u0663\u0664")).encode(),
    "lone surrogate": json.dumps(_hermes(scope="c", name="n")).replace('"n"}', '"\\udcff"}').encode(),
    "empty": b"",
    "null": b"null",
    "oversized": b'{"event_type": "' + b"x" * (MAX + 10) + b'"}',
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_the_hostile_corpus_is_rejected_or_harmless(case: str) -> None:
    result = total(CORPUS[case])
    if case.startswith("run number"):
        # Rejected (too long a name) or accepted with no run number: never an int() error later.
        assert isinstance(result, BadEvent) or result.run_number(RUN) is None
    else:
        assert isinstance(result, BadEvent), case


def test_a_500_deep_document_is_rejected_before_anything_recurses_on_it() -> None:
    body = json.dumps({"event_type": "t", "payload": {"a": json.loads("[" * 500 + "]" * 500)}, "created_at": "x"})
    with pytest.raises(BadEvent, match="nested deeper than 32 levels"):
        parse_message(body.encode(), {}, MAX)


@given(st.text(max_size=300))
def test_a_dlq_header_written_from_any_reason_holds_no_control_character(reason: str) -> None:
    from inlet.listener.broker import header_safe

    safe = header_safe(reason, 100)
    assert len(safe) <= 100 and safe.isprintable()
