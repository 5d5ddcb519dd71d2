"""Names are safe in every scope: the server's schema against a plain-code reference predicate.

Property-based (hypothesis): random unicode names, path segments, control characters and
digits of every script. The schema is what the Rucio server validates with (the NAME,
SCOPE and per-experiment rules of rucio_inlet.schema_rules), driven by jsonschema exactly as
Rucio drives it (``jsonschema.validate``, whose ``pattern`` is ``re.search``).
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

import jsonschema
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rucio_inlet.naming import NAME_LENGTH, SAFE_NAME_REGEX, NamingSettings, name_problem
from rucio_inlet.schema_rules import NON_ASCII_NAME, name_rules, name_schema, scope_schema, with_rules

NAMING = NamingSettings()
NAME = name_schema(NAME_LENGTH)
SCOPE = scope_schema(NAMING, 25)
DID: dict[str, Any] = with_rules(
    {"type": "object", "properties": {"scope": SCOPE, "name": NAME}, "required": ["scope", "name"]},
    name_rules(NAMING),
)
#: Rucio copies the first 125 characters of an error into an HTTP header (gunicorn: Latin-1 only).
HEADER_CHARS = 125


# jsonschema.validate() is check_schema() + best_match(iter_errors()); the schemas are checked once
# here, so each example costs only the validation itself.
_VALIDATORS: dict[int, Any] = {}
for _schema in (NAME, SCOPE, DID):
    _cls = jsonschema.validators.validator_for(_schema)
    _cls.check_schema(_schema)
    _VALIDATORS[id(_schema)] = _cls(_schema)


def _error(schema: dict[str, Any], value: object) -> jsonschema.ValidationError | None:
    return jsonschema.exceptions.best_match(_VALIDATORS[id(schema)].iter_errors(value))


def schema_accepts(schema: dict[str, Any], value: object) -> bool:
    return _error(schema, value) is None


def refusal(schema: dict[str, Any], value: object) -> str:
    error = _error(schema, value)
    assert error is not None, f"{value!r} was accepted"
    return str(error)


def header_safe(message: str) -> bool:
    """What gunicorn accepts in Rucio's ExceptionMessage header (after Rucio strips newlines)."""
    head = message.replace("\n", " ").replace("\r", " ")[:HEADER_CHARS]
    return re.fullmatch(r"[ \t\x21-\x7e\x80-\xff]*", head) is not None


# -- strategies ---------------------------------------------------------------------------------
SAFE_CHARS = string.ascii_letters + string.digits + "._-"
segments = st.one_of(
    st.text(SAFE_CHARS, min_size=1, max_size=8),
    st.sampled_from(["", ".", "..", "...", ".hidden", "a..b", "..a"]),
    st.text(min_size=1, max_size=4),  # any unicode, control characters included
)
path_like = st.lists(segments, min_size=1, max_size=6).map("/".join)
prefixed = st.tuples(st.sampled_from(["", "/", "//", "./", "../"]), path_like, st.sampled_from(["", "/", "\n"])).map(
    "".join
)
unicode_digits = st.characters(categories=["Nd"]).filter(lambda c: c not in string.digits)
controls = st.characters(categories=["Cc"])
names = st.one_of(
    prefixed,
    st.text(max_size=30),
    st.tuples(st.text(SAFE_CHARS, min_size=1, max_size=10), controls).map("".join),
    st.tuples(st.just("run"), st.text(unicode_digits, min_size=6, max_size=6), st.just(".raw")).map("".join),
)


# -- the reference predicate itself -------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "/../../../../cygno.raw/0912/912345/run912345.mid.gz",  # the alias attack
        "/abs/path",
        "a/../b",
        "a/./b",
        "..",
        ".",
        "a//b",
        "a/",
        "run012345.raw\n",
        "a\x00b",
        "a\x7fb",
        "a\x85b",
        "run\u0660\u0661\u0662\u0663\u0664\u0665.raw",  # Arabic-Indic digits
        "",
        "x" * (NAME_LENGTH + 1),
        "-leading-dash",
        "a b",
    ],
)
def test_unsafe_names_have_a_reason(name: str) -> None:
    assert name_problem(name)
    assert not schema_accepts(NAME, name)


@pytest.mark.parametrize("name", ["a", "smoke-0123456789ab.dat", "dir/sub/f.root", "a/.hidden", "a/..b", "x" * 250])
def test_safe_names_pass(name: str) -> None:
    assert name_problem(name) is None
    assert schema_accepts(NAME, name)


# -- properties (no deadlines: a test asserts what its name says, not how fast a shared machine ran) --
@settings(max_examples=500, deadline=None)
@given(names)
@example("run012345.raw\n")
@example("/../x")
def test_name_schema_equals_the_reference(name: str) -> None:
    assert schema_accepts(NAME, name) == (name_problem(name) is None)
    assert (re.search(SAFE_NAME_REGEX, name) is not None) == (name_problem(name) is None or len(name) > NAME_LENGTH)


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from(["test", "user.jdoe", "group.phys", "cygno.raw", "cygno.reco", "kloe.raw"]))
def test_every_scope_refuses_unsafe_names(name: str, scope: str) -> None:
    if name_problem(name) is not None:
        assert not schema_accepts(DID, {"scope": scope, "name": name})


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from(["test", "cygno.raw", "kloe.raw"]))
def test_refusal_fits_rucios_error_header(name: str, scope: str) -> None:
    """No refusal makes the server answer HTTP 500: the header part of the message is Latin-1."""
    did = {"scope": scope, "name": name}
    if not schema_accepts(DID, did):
        assert header_safe(f"Problem validating did: {refusal(DID, did)}")


@settings(max_examples=300, deadline=None)
@given(st.text(unicode_digits, min_size=6, max_size=6), st.sampled_from(["\n", "", "\r\n"]))
def test_experiment_patterns_are_whole_and_ascii(digits: str, tail: str) -> None:
    for scope in ("cygno.raw", "kloe.raw"):
        assert not schema_accepts(DID, {"scope": scope, "name": f"run{digits}.raw{tail}"})
        assert NAMING.run_of(scope, f"run{digits}.mid.gz") is None
    assert NAMING.did_problem("cygno.raw", f"run{digits}.raw") is not None


@settings(deadline=None)
@given(st.from_regex(r"run[0-9]{6}\.(raw|mid\.gz)", fullmatch=True))
def test_ascii_run_names_still_accepted(name: str) -> None:
    assert schema_accepts(DID, {"scope": "cygno.raw", "name": name})
    assert NAMING.did_problem("cygno.raw", name) is None


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from(["test", "cygno.raw", "kloe.raw", "user.x"]))
def test_did_problem_agrees_with_the_schema(name: str, scope: str) -> None:
    """The Python check for routes Rucio does not validate decides like the server's schema."""
    assert (NAMING.did_problem(scope, name) is None) == schema_accepts(DID, {"scope": scope, "name": name})


# -- scopes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["user.JDoe", "user.jdoe", "group.phys", "group.Higgs_WG", "test", "cygno.raw"])
def test_rucio_scope_conventions_accepted(scope: str) -> None:
    assert schema_accepts(SCOPE, scope)


@pytest.mark.parametrize(
    "scope", ["test\n", "user.jdoe\n", "group.", "group.a.b", "user.j doe", "t\u0660", "cygno.raw\n", "../x"]
)
def test_scopes_refused_whole(scope: str) -> None:
    assert not schema_accepts(SCOPE, scope)
    assert header_safe(f"Problem validating scope: {refusal(SCOPE, scope)}")


def test_non_ascii_refusal_explains_without_quoting() -> None:
    name = "run\u0660\u0661\u0662\u0663\u0664\u0665.raw"
    text = refusal(DID, {"scope": "cygno.raw", "name": name})
    assert NON_ASCII_NAME in text
    assert text.index(NON_ASCII_NAME) < HEADER_CHARS
    assert all(unicodedata.category(c) != "Nd" or c in string.digits for c in text.splitlines()[0])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/../../x", "must not start with '/'"),
        ("a/../x", "'.' or '..' path segment"),
        ("a//x", "empty path segment"),
        ("a\n", "control or non-ASCII"),
    ],
)
def test_refusal_says_why(name: str, reason: str) -> None:
    assert reason in refusal(DID, {"scope": "test", "name": name})
