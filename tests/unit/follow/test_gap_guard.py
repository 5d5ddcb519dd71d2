"""The gap rule: rows are handed out at once, the floor moves only past settled ids."""

from __future__ import annotations

import pytest

from inlet.errors import InletError
from inlet.follow.source import Cursor, GapGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_contiguous_ids_move_the_floor_once_marked() -> None:
    g = GapGuard(0, timeout=5, clock=Clock())
    assert g.observe([1, 2, 3], 3) == 0  # committed but not handed out yet
    for i in (1, 2, 3):
        g.mark(i)
    assert g.observe([1, 2, 3], 3) == 3
    assert g.cursor == Cursor(3)


def test_a_gap_holds_the_floor_until_it_is_old_enough() -> None:
    clock = Clock()
    g = GapGuard(10, timeout=5, clock=clock)
    g.mark(12)  # 12 committed before 11: handed out at once
    assert g.observe([12], 12) == 10
    assert g.cursor == Cursor(10, frozenset({12}))
    clock.now += 4.9
    assert g.observe([12], 12) == 10
    # 11 commits late (a competing listener): it is still delivered, and then everything settles.
    g.mark(11)
    assert g.observe([11, 12], 12) == 12
    assert g.cursor == Cursor(12)


def test_a_gap_older_than_the_timeout_was_a_rollback() -> None:
    clock = Clock()
    g = GapGuard(10, timeout=5, clock=clock)
    g.mark(13)
    assert g.observe([13], 13) == 10
    clock.now += 5
    assert g.observe([13], 13) == 13
    assert not g.waiting


def test_unmarked_rows_stop_the_floor_after_a_dead_gap() -> None:
    clock = Clock()
    g = GapGuard(0, timeout=1, clock=clock)
    g.observe([3], 3)
    clock.now += 2
    assert g.observe([3, 4], 4) == 2  # 1 and 2 are dead; 3 is not handed out yet
    g.mark(3)
    g.mark(4)
    assert g.observe([3, 4], 4) == 4


def test_a_new_gap_is_timed_from_when_an_id_above_it_was_first_seen() -> None:
    clock = Clock()
    g = GapGuard(0, timeout=5, clock=clock)
    g.mark(1)
    g.observe([1], 1)
    clock.now += 10
    g.mark(3)
    assert g.observe([3], 3) == 1  # 2 just went missing: not dead yet, though older checkpoints are
    clock.now += 5
    assert g.observe([3], 3) == 3


def test_cursor_token_round_trip_and_hostile_tokens() -> None:
    c = Cursor(120, frozenset({125, 122}))
    assert c.token() == "120+122,125"
    assert Cursor.parse(c.token()) == c
    assert Cursor.parse("7") == Cursor(7)
    for bad in ("", "-1", "abc", "5+3", "5+x", "1" * 30, "5+" + "9" * 40, "0+99999999"):
        with pytest.raises(InletError):
            Cursor.parse(bad)
