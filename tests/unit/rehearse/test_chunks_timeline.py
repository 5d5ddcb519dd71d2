"""The synthetic DAQ's chunks and the per-chunk timeline: names, bytes, checksums, hop arithmetic."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import zlib
from pathlib import Path

import pytest
from rucio_inlet.naming import NamingSettings

from inlet.rehearse.chunks import StrainSource, chunk_name, gps_now, write_chunk
from inlet.rehearse.timeline import ChunkTimes, Timeline, rucio_time


def test_chunk_names_follow_the_virgo_naming_rules() -> None:
    name = chunk_name(42, "hrec", 1_387_324_818)
    assert name == "run000042_hrec_1387324818.gwf"
    assert NamingSettings().run_of("virgo.raw", name) == 42


def test_chunks_have_the_asked_size_and_differ() -> None:
    src = StrainSource(85_000, seed=1)
    a, b = src.data(1000), src.data(1001)
    assert len(a) == len(b) == 85_000
    assert a != b
    assert a.startswith(b"INLET-STRAIN gps=1000 rate=4096")


def test_a_too_small_chunk_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="at least 256 B"):
        StrainSource(100)


def test_write_chunk_closes_the_file_then_writes_a_sidecar_with_checksums(tmp_path: Path) -> None:
    data = StrainSource(1000, seed=2).data(gps_now())
    c = write_chunk(tmp_path, 0, "run000001_hrec_1000000000.gwf", data, 1, ".json")
    assert c.path.read_bytes() == data
    side = json.loads((tmp_path / "run000001_hrec_1000000000.gwf.json").read_text())
    assert side == {
        "run": 1,
        "size": 1000,
        "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
    }
    assert (c.adler32, c.md5) == (side["adler32"], side["md5"])
    # No temporary file left behind for the watcher to see.
    assert sorted(p.name for p in tmp_path.iterdir()) == [c.name, c.name + ".json"]


def test_rucio_times_are_read_as_utc() -> None:
    expected = dt.datetime(2026, 11, 22, 1, 2, 3, 500000, tzinfo=dt.UTC).timestamp()
    assert rucio_time("2026-11-22 01:02:03.500000") == pytest.approx(expected)
    assert rucio_time("2026-11-22T01:02:03.5") == pytest.approx(expected)
    assert rucio_time(dt.datetime(2026, 11, 22, 1, 2, 3, 500000)) == pytest.approx(expected)
    assert rucio_time(None) is None
    assert rucio_time("None") is None
    assert rucio_time("not a time") is None


def test_hops_use_the_later_of_two_fields_and_need_both_ends() -> None:
    c = ChunkTimes(0, "x", 1, "00000001", closed=100.0, registered=100.4, request_created=100.3, submitted=101.0)
    assert c.hop("closed", "registered") == pytest.approx(0.4)
    # A per-file rule's request exists before registration ends: 0, not negative.
    assert c.hop("registered", "registered|request_created") == 0.0
    assert c.hop("registered|request_created", "submitted") == pytest.approx(0.6)
    assert c.hop("submitted", "transferred") is None


def test_timeline_keeps_the_first_timestamp_of_a_repeated_event() -> None:
    t = Timeline()
    t.add(ChunkTimes(0, "a", 1, "00000001", closed=1.0))
    assert t.update("a", event_seen=5.0)
    assert t.update("a", event_seen=9.0)
    assert t.snapshot()[0].event_seen == 5.0
    assert t.record("a", {"event_error": None}, first_only=False)
    assert not t.update("not-in-this-rehearsal", event_seen=1.0)


def test_timeline_wait_wakes_on_update() -> None:
    t = Timeline()
    t.add(ChunkTimes(0, "a", 1, "00000001", closed=1.0))
    assert not t.wait_settled(timeout=0.01)
    threading.Timer(0.05, lambda: t.update("a", event_status="downloaded", poll_status="corrupted")).start()
    assert t.wait_settled(timeout=30)
    assert t.settled_count == 1
    t.update("a", event_status="corrupted")  # a repeated update does not count it twice
    assert t.settled_count == 1


def test_timeline_progress_counters_match_a_full_count_after_every_change() -> None:
    from inlet.rehearse.runner import counts

    t = Timeline()
    for i in range(5):
        t.add(ChunkTimes(i, f"c{i}", 1, "00000001", closed=float(i), drill=i == 4))
    t.update("c0", registered=1.0, available_b=2.0, event_status="downloaded")
    t.update("c1", poll_seen=3.0, poll_status="corrupted")
    t.update("c1", first_only=False, poll_status="downloaded")
    t.update("c2", event_status="corrupted", poll_status="downloaded")
    t.add(ChunkTimes(3, "c3", 1, "00000001", closed=3.0, registered=4.0))  # re-added: replaces, not adds
    totals, recent = t.progress(2)
    assert totals == counts(t.snapshot())
    assert totals["sent"] == 5 and totals["lost_events"] == 3 and totals["downloaded_polling"] == 2
    assert totals["drilled"] == 1 and totals["uploaded"] == 2
    assert [c.name for c in recent] == ["c3", "c4"]
