"""The follower against a real (SQLite) catalogue, polling only (no broker in unit tests)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from rucio_inlet.catalog_models import FileAvailability
from sqlalchemy import insert

from inlet.catalog import Catalog, open_catalog
from inlet.catalog.runs import add_file, mark_available, upsert_run
from inlet.errors import InletError
from inlet.follow.follower import Follower
from inlet.follow.source import FollowedFile, files_after, seq_at
from inlet.select.grammar import parse_selection

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    c = open_catalog(f"sqlite:///{tmp_path / 'c.db'}")
    with c.session() as s:
        for number, stream in ((1, "ksl"), (2, "kpm")):
            run = upsert_run(s, "kloe", number, scope="kloe.raw", conditions={"stream": stream})
            for i in range(3):
                add_file(s, run, "kloe.raw", f"run{number}.f{i}", 100 + i, adler32="0000000a")
    yield c
    c.dispose()


def avail(cat: Catalog, name: str, rse: str, at: dt.datetime = T0) -> None:
    with cat.session() as s:
        mark_available(s, "kloe.raw", name, rse, at)


def take(f: Follower, n: int) -> list[FollowedFile]:
    out = list(itertools.islice(iter(f), n))
    return out


def test_files_after_orders_by_seq_and_filters_selection_and_rse(cat: Catalog) -> None:
    avail(cat, "run1.f1", "S3")
    avail(cat, "run2.f0", "S3")  # other stream
    avail(cat, "run1.f0", "TAPE")
    avail(cat, "run1.f0", "S3")
    sel = parse_selection("raw: stream = 'ksl'")
    with cat.session() as s:
        got = files_after(s, sel, rse="S3", after=0, limit=10)
        assert [(f.name, f.rse) for f in got] == [("run1.f1", "S3"), ("run1.f0", "S3")]
        assert [f.seq for f in got] == sorted(f.seq for f in got)
        assert files_after(s, sel, rse="S3", after=got[0].seq, limit=10) == got[1:]
        # `rse = X` in the selection means "the file is (also) on X", not this row's RSE.
        both = files_after(s, parse_selection("raw: rse = TAPE"), rse="S3", after=0, limit=10)
        assert [f.name for f in both] == ["run1.f0"]
    d = got[0].as_dict()
    assert d["did"] == "kloe.raw:run1.f1" and d["available_at"] == "2026-11-01T00:00:00Z"


def test_public_at_hides_runs_under_embargo(cat: Catalog) -> None:
    with cat.session() as s:
        upsert_run(s, "kloe", 2, embargo_until=T0 + dt.timedelta(days=10))
    avail(cat, "run1.f0", "S3")
    avail(cat, "run2.f0", "S3")
    sel = parse_selection("*:")
    with cat.session() as s:
        assert len(files_after(s, sel, rse=None, after=0, limit=10)) == 2
        assert [f.name for f in files_after(s, sel, rse=None, after=0, limit=10, public_at=T0)] == ["run1.f0"]
        later = T0 + dt.timedelta(days=11)
        assert len(files_after(s, sel, rse=None, after=0, limit=10, public_at=later)) == 2


def test_seq_at_starts_before_the_first_row_at_or_after_since(cat: Catalog) -> None:
    avail(cat, "run1.f0", "S3", T0)
    avail(cat, "run1.f1", "S3", T0 + dt.timedelta(hours=2))
    with cat.session() as s:
        first = files_after(s, parse_selection("*:"), rse=None, after=0, limit=10)
        assert seq_at(s, T0 + dt.timedelta(hours=1)) == first[1].seq - 1
        assert seq_at(s, T0 + dt.timedelta(days=1)) == first[1].seq  # nothing since: now


def test_history_then_live_and_a_named_cursor_survives_a_restart(cat: Catalog) -> None:
    avail(cat, "run1.f0", "S3")
    avail(cat, "run1.f1", "S3")
    f = Follower("raw: stream = ksl", catalog=cat, broker=None, rse="S3", name="t1", start="start", tick=0.05)
    it = iter(f)
    assert next(it).name == "run1.f0"
    assert next(it).name == "run1.f1"  # run1.f0 is now finished and stored
    avail(cat, "run1.f2", "S3")  # live
    avail(cat, "run2.f2", "S3")  # not selected
    assert next(it).name == "run1.f2"
    it.close()  # like a Ctrl-C while run1.f2 was in hand: it was not finished
    again = Follower("raw: stream = ksl", catalog=cat, broker=None, rse="S3", name="t1", start="now", tick=0.05)
    it2 = iter(again)
    assert next(it2).name == "run1.f2"
    again.ack()
    it2.close()
    third = Follower("raw: stream = ksl", catalog=cat, broker=None, rse="S3", name="t1", tick=0.05)
    avail(cat, "run1.f1", "TAPE")  # other RSE
    avail(cat, "run1.f0", "TAPE")
    with cat.session() as s:  # a row that commits out of order is still handed out, once
        late = add_file(s, upsert_run(s, "kloe", 1), "kloe.raw", "run1.f9", 1)
        s.flush()
        s.execute(insert(FileAvailability).values(id=1000, file_id=late.id, rse="S3", available_at=T0))
    f3 = take(third, 1)
    assert [x.seq for x in f3] == [1000]


def test_an_unnamed_follower_starts_now(cat: Catalog) -> None:
    avail(cat, "run1.f0", "S3")
    f = Follower("*:", catalog=cat, broker=None, tick=0.05)
    it = iter(f)
    avail(cat, "run1.f1", "S3")
    assert next(it).name == "run1.f1"
    it.close()


def test_a_name_keeps_its_selection(cat: Catalog) -> None:
    f = Follower("*:", catalog=cat, broker=None, name="t2", tick=0.05)
    it = iter(f)
    avail(cat, "run1.f0", "S3")
    next(it)
    it.close()
    other = Follower("raw: run = 2", catalog=cat, broker=None, name="t2", tick=0.05)
    with pytest.raises(InletError, match="follows"):
        next(iter(other))
    other.forget()
    avail(cat, "run2.f0", "S3")
    assert next(iter(Follower("raw: run = 2", catalog=cat, broker=None, name="t2", tick=0.05, start="start")))


def test_hostile_names_are_refused(cat: Catalog) -> None:
    for bad in ("", "../x", "a b", "x" * 65, "a;b", "-x"):
        with pytest.raises(InletError, match="not allowed"):
            Follower("*:", catalog=cat, broker=None, name=bad)


def test_a_second_process_under_the_same_name_is_caught_when_saving(cat: Catalog) -> None:
    avail(cat, "run1.f0", "S3")
    avail(cat, "run1.f1", "S3")
    one = iter(Follower("*:", catalog=cat, broker=None, name="t3", start="start", tick=0.05))
    two = Follower("*:", catalog=cat, broker=None, name="t3", tick=0.05)
    it_two = iter(two)
    assert next(one).name == "run1.f0"
    assert next(it_two).name == "run1.f0"
    next(one)  # stores run1.f0 as done
    with pytest.raises(InletError, match="another process moved"):
        next(it_two)
