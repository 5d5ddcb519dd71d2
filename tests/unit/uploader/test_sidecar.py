"""The sidecar parser: good sidecars read, every bad one a BadSidecar with a reason, nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inlet.uploader.sidecar import MAX_BYTES, BadSidecar, Sidecar, check_sidecar, parse_sidecar, read_sidecar

ADLER = "0a1b2c3d"
MD5 = "0123456789abcdef0123456789abcdef"


def test_a_good_sidecar_is_read() -> None:
    doc = {"run": 912345, "adler32": ADLER.upper(), "md5": MD5, "size": 85_000, "daq": {"crate": 3}}
    assert parse_sidecar(json.dumps(doc).encode()) == Sidecar(912345, ADLER, MD5, 85_000)
    assert parse_sidecar(b"{}") == Sidecar()
    assert Sidecar(1, ADLER, None, 5).as_dict() == {"run": 1, "adler32": ADLER, "size": 5}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"run": "abc"}', "'run' is \"abc\""),
        (b'{"size": "abc"}', "'size' is \"abc\""),
        (b'{"run": 1000000}', "outside 0-999999"),
        (b'{"run": -1}', "outside"),
        (b'{"run": true}', "whole number"),
        (b'{"run": 1.5}', "whole number"),
        (b'{"run": [1]}', "whole number"),
        (b'{"run": {"a": {"b": []}}}', "whole number"),
        (b'{"size": -5}', "outside"),
        (b'{"adler32": 12345678}', "8 hex digits"),
        (b'{"adler32": "xyz"}', "8 hex digits"),
        (b'{"md5": "abc"}', "32 hex digits"),
        (b'{"run": 1, "run": 2}', "twice"),
        (b'{"run": NaN}', "not a number JSON allows"),
        (b'{"size": Infinity}', "not a number JSON allows"),
        (b'{"run": 1e999}', "whole number"),
        (b"[1, 2]", "not an object"),
        (b'"run"', "not an object"),
        (b"null", "not an object"),
        (b"not json at all", "not JSON"),
        (b'{"run": 1', "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"run": ' + b"9" * 5001 + b"}", "5001 digits"),
        (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "more than"),
        (b"[" * 30_000 + b"]" * 30_000, "nests too deeply"),
    ],
)
def test_bad_sidecars_say_what_is_wrong(data: bytes, words: str) -> None:
    with pytest.raises(BadSidecar) as err:
        parse_sidecar(data)
    assert words in str(err.value)


def test_a_sidecar_that_is_not_a_regular_file_is_bad(tmp_path: Path) -> None:
    (tmp_path / "target.json").write_text('{"run": 1}')
    (tmp_path / "link.json").symlink_to(tmp_path / "target.json")
    (tmp_path / "dir.json").mkdir()
    os.mkfifo(tmp_path / "fifo.json")
    for name, words in (("link.json", "symlink"), ("dir.json", "directory"), ("fifo.json", "FIFO")):
        with pytest.raises(BadSidecar) as err:
            read_sidecar(tmp_path / name)
        assert words in str(err.value)
    assert read_sidecar(tmp_path / "absent.json") is None
    assert read_sidecar(tmp_path / "target.json") == Sidecar(run=1)


def test_a_huge_sidecar_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_BYTES * 10) + b"{}")
    with pytest.raises(BadSidecar, match="more than"):
        read_sidecar(big)


# -- properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_bad_sidecar_only(data: bytes) -> None:
    try:
        parse_sidecar(data)
    except BadSidecar as exc:
        message = str(exc)
    else:
        return
    assert message and "\n" not in message


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["run", "size", "adler32", "md5", "other"]), json_values, max_size=5))
def test_any_json_object_is_accepted_only_with_valid_values(doc: dict[str, Any]) -> None:
    try:
        got = parse_sidecar(json.dumps(doc).encode())
    except BadSidecar:
        return
    for key in ("run", "size"):
        v = doc.get(key)
        assert v is None or (type(v) is int and v >= 0)
    assert got.run is None or 0 <= got.run <= 999_999
    assert got.adler32 is None or len(got.adler32) == 8
    assert got.md5 is None or len(got.md5) == 32


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.integers(0, 999_999)),
    st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    st.one_of(st.none(), st.from_regex(r"[0-9a-f]{8}", fullmatch=True)),
    st.one_of(st.none(), st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
)
def test_every_valid_sidecar_round_trips(run: int | None, size: int | None, adler: str | None, md5: str | None) -> None:
    doc = {k: v for k, v in (("run", run), ("size", size), ("adler32", adler), ("md5", md5)) if v is not None}
    assert parse_sidecar(json.dumps(doc).encode()) == Sidecar(run, adler, md5, size)
    assert check_sidecar(doc).as_dict() == doc
