"""The selection grammar: what each form parses to, and where errors point."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rucio_inlet.catalog_query import And, Cmp, Not, Or

from inlet.select.grammar import Selection, SelectSyntaxError, parse_selection

GRAMMAR_TABLE = [
    (
        "raw:(run_number=5000) and (stream='ksl')",
        Selection("raw", And((Cmp("run_number", "=", 5000, 5), Cmp("stream", "=", "ksl", 27)))),
    ),
    ("cygno.raw: run_nr == 7", Selection("cygno.raw", Cmp("run_nr", "=", 7, 11))),
    ("*: size > 1.5e3", Selection(None, Cmp("size", ">", 1500.0, 3))),
    ("beam <= -2", Selection(None, Cmp("beam", "<=", -2, 0))),
    ('name != "x*.gz"', Selection(None, Cmp("name", "!=", "x*.gz", 0))),
    ("raw:", Selection("raw", None)),
    ("*:", Selection(None, None)),
    ("ok = TRUE", Selection(None, Cmp("ok", "=", True, 0))),
    (
        "run_type in (physics, 'cosmics')",
        Selection(None, Or((Cmp("run_type", "=", "physics", 0), Cmp("run_type", "=", "cosmics", 0)))),
    ),
    ("run between 1 and 9", Selection(None, And((Cmp("run", ">=", 1, 0), Cmp("run", "<=", 9, 0))))),
    (
        "a=1 or b=2 and c=3",  # and binds tighter than or
        Selection(None, Or((Cmp("a", "=", 1, 0), And((Cmp("b", "=", 2, 7), Cmp("c", "=", 3, 15)))))),
    ),
    (
        "(a=1 or b=2) and not c=3",
        Selection(None, And((Or((Cmp("a", "=", 1, 1), Cmp("b", "=", 2, 8))), Not(Cmp("c", "=", 3, 21))))),
    ),
    ("AND_key = 1", Selection(None, Cmp("AND_key", "=", 1, 0))),
    ("s = 'it\\'s'", Selection(None, Cmp("s", "=", "it's", 0))),
    ("run_start >= '2026-11-01'", Selection(None, Cmp("run_start", ">=", "2026-11-01", 0))),
    ("NOT a = 1", Selection(None, Not(Cmp("a", "=", 1, 4)))),
]


@pytest.mark.parametrize(("text", "expected"), GRAMMAR_TABLE)
def test_grammar_table(text: str, expected: Selection) -> None:
    assert parse_selection(text) == expected


ERRORS = [
    ("raw:(run_number=) and x=1", 16, "expected a value"),
    ("raw:(run=1", 4, "unclosed '('"),
    ("raw: stream='ksl", 12, "unterminated string"),
    ("raw: run 5", 9, "expected an operator"),
    ("raw: run=1 run=2", 11, "expected 'and', 'or' or the end"),
    ("a=1 and", 7, "found the end of the expression"),
    ("a in 1", 5, "'(' after 'in'"),
    ("a in (1, 2", 10, "',' or ')'"),
    ("a between 1 or 2", 12, "'and' in 'between"),
    ("a = 1 )", 6, "expected 'and', 'or'"),
    ("= 1", 0, "a metadata key"),
    ("a # 1", 2, "unexpected character '#'"),
    ("   ", 0, "empty selection"),
    ("ru*n = 1", 0, "without '*'"),
]


@pytest.mark.parametrize(("text", "pos", "message"), ERRORS)
def test_errors_point_at_the_problem(text: str, pos: int, message: str) -> None:
    with pytest.raises(SelectSyntaxError) as err:
        parse_selection(text)
    assert err.value.pos == pos
    assert message in err.value.message
    # The rendered error puts a caret under the column.
    lines = str(err.value).splitlines()
    assert lines[-1].index("^") - 2 == pos
    assert f"column {pos + 1}" in lines[0]


HOSTILE = [
    ("run = 1e999", "number 1e999 is out of range"),
    ("run = -1e999", "is out of range"),
    ("run = 1234567890123456789012345", "is out of range"),
    ("run = 9223372036854775808", "is out of range"),  # 2**63
    ("run = " + "9" * 5000, "is out of range"),  # past Python's int() digit limit
    ("size < 1e300", "is out of range"),
    (" or ".join(["run=1"] * 3000), "characters long"),
    ("run in (" + ",".join(map(str, range(3000))) + ")", "more than 500 comparisons"),
    (" or ".join(["a=1"] * 501), "more than 500 comparisons"),
    ("(" * 3000 + "run=1" + ")" * 3000, "nested parentheses"),
    ("not " * 3000 + "run=1", "nested parentheses or 'not's"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE, ids=lambda v: v[:30] if isinstance(v, str) else v)
def test_hostile_selections_are_refused_with_a_fix(text: str, message: str) -> None:
    with pytest.raises(SelectSyntaxError) as err:
        parse_selection(text)
    assert message in err.value.message
    assert err.value.fix and "\n" not in err.value.problem and len(err.value.problem) < 200


def test_limits_leave_room_for_real_selections() -> None:
    assert parse_selection("run = 9223372036854775807 and size >= -12.5e3 and run = 0007")
    assert parse_selection("run in (" + ",".join(map(str, range(500))) + ")")
    assert parse_selection("(" * 50 + "run=1" + ")" * 50)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("()'\"=<>!*:,. -+e0123456789abnotrdi\\\n\t")), max_size=300))
def test_any_text_parses_or_is_a_selection_error(text: str) -> None:
    error: SelectSyntaxError | None = None
    try:
        parse_selection(text)
    except SelectSyntaxError as err:  # anything else (RecursionError, OverflowError...) fails the test
        error = err
    if error is not None:
        assert 0 <= error.pos <= len(text) and error.problem and error.fix
