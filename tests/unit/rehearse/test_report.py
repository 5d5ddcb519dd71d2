"""The rehearsal report from a known set of chunk timelines: counts, statistics, files, plots."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from inlet.rehearse import report
from inlet.rehearse.runner import RehearsalPlan, counts
from inlet.rehearse.timeline import CORRUPTED, DOWNLOADED, ChunkTimes


def chunk(i: int, *, poll: float = 5.0, status: str = DOWNLOADED) -> ChunkTimes:
    t = 1000.0 + i
    return ChunkTimes(
        i,
        f"run000001_hrec_{1_000_000_000 + i}.gwf",
        85_000,
        "0000000a",
        closed=t,
        registered=t + 0.2,
        registered_seen=t + 0.21,
        request_created=t + 0.2,
        submitted=t + 0.5,
        transferred=t + 0.6,
        available_b=t + 0.7,
        event_seen=t + 0.8,
        event_done=t + 0.9,
        event_status=status,
        poll_seen=t + poll,
        poll_done=t + poll + 0.1,
        poll_status=status,
    )


META = {
    "run": 1,
    "experiment": "virgo",
    "chunks": 11,
    "chunk_size": 85_000,
    "rate": 1.0,
    "speedup": 1.0,
    "first_rse": "SITE_A_DISK",
    "download_rse": "SITE_B_DISK",
    "targets": ["SITE_B_DISK"],
    "poll_interval": 5.0,
    "started": "2026-11-22T00:00:00+00:00",
    "wall_seconds": 20.0,
    "notes": ["a note"],
}


def is_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_counts_statistics_and_files(tmp_path: Path) -> None:
    chunks = [chunk(i) for i in range(10)]
    lost = ChunkTimes(10, "run000001_hrec_1000000010.gwf", 85_000, "0000000a", closed=1010.0, registered=1010.2)
    chunks.append(lost)
    totals = counts(chunks)
    assert totals == {
        "sent": 11,
        "uploaded": 11,
        "replicated": 10,
        "downloaded_events": 10,
        "downloaded_polling": 10,
        "corrupted_events": 0,
        "corrupted_polling": 0,
        "lost_events": 1,
        "lost_polling": 1,
        "drilled": 0,
    }
    doc = report.write(tmp_path, chunks, META, totals)
    hops = {h["hop"]: h for h in doc["hops"]}
    assert hops["upload"]["n"] == 11
    assert hops["upload"]["median"] == pytest.approx(0.2)
    assert hops["end to end (events)"]["median"] == pytest.approx(0.9)
    assert hops["end to end (polling)"]["median"] == pytest.approx(5.1)
    assert doc["comparison"]["polling_over_events_median"] == pytest.approx(5.1 / 0.9)
    assert doc["dominant_sleep"]["daemon"] == "conveyor submitter"  # 0.3 s, the longest waiting hop

    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["counts"] == totals
    assert len(saved["chunks"]) == 11
    assert saved["chunks"][10]["event_done"] is None
    md = (tmp_path / "report.md").read_text()
    assert "| 11 | 11 | 10 | 10 | 10 | 0/0 | 1/1 | 0 |" in md
    assert "![latency per hop](hops.png)" in md
    assert "run000001_hrec_1000000010.gwf | lost | lost | never reached site B" in md
    for png in ("hops.png", "latency-over-time.png"):
        w, h = is_png(tmp_path / png)
        assert w > 100 and h > 100


def test_corrupted_chunks_are_listed_with_the_reason(tmp_path: Path) -> None:
    bad = chunk(3, status=CORRUPTED)
    bad.event_error = "adler32 deadbeef at site B, 0000000a written by the DAQ"
    chunks = [chunk(0), bad]
    totals = counts(chunks)
    assert (totals["corrupted_events"], totals["downloaded_events"], totals["lost_events"]) == (1, 1, 0)
    md = report.markdown(report.build(chunks, META, totals))
    assert "| run000001_hrec_1000000003.gwf | corrupted | corrupted | adler32 deadbeef at site B" in md


def test_an_empty_hop_is_reported_as_missing_not_zero(tmp_path: Path) -> None:
    only_uploaded = [ChunkTimes(0, "x", 1, "00000001", closed=1.0, registered=1.5)]
    doc = report.write(tmp_path, only_uploaded, META, counts(only_uploaded))
    hops = {h["hop"]: h for h in doc["hops"]}
    assert hops["end to end (events)"]["n"] == 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert {h["hop"]: h for h in saved["hops"]}["end to end (events)"]["median"] is None


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (RehearsalPlan(chunks=0), "at least one chunk"),
        (RehearsalPlan(chunks=5, corrupt=[5]), "chunk indexes go from 0 to 4"),
        (RehearsalPlan(chunks=5, speedup=0), "must be positive"),
        (RehearsalPlan(chunks=5, grouping="dataset"), "give auto, DATASET or NONE"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(plan: RehearsalPlan, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan.check()


def test_the_interval_is_rate_times_speedup() -> None:
    assert RehearsalPlan(chunks=1, rate=1.0, speedup=10).interval == pytest.approx(0.1)
    assert RehearsalPlan(chunks=1, rate=4.0, speedup=1).interval == pytest.approx(0.25)


def test_registered_within_counts_the_chunks_sent_not_only_the_registered() -> None:
    late = chunk(1)
    late.registered = late.closed + 7.0
    never = ChunkTimes(2, "run000001_hrec_1000000002.gwf", 85_000, "0000000a", closed=1002.0)
    assert report.registered_within([chunk(0), late, never, chunk(3)], 5.0) == pytest.approx(0.5)


def test_the_cpu_section_shows_each_group_per_delivered_file() -> None:
    cpu = {
        "segment_s": 100.0,
        "delivered": 200,
        "files_per_s": 2.0,
        "cpu_s": {"rucio server": 10.0, "postgresql": 4.0, "hermes": 0.0},
        "cpu_s_per_file": {"rucio server": 0.05, "postgresql": 0.02, "hermes": 0.0},
        "total_cpu_s": 14.0,
        "total_cpu_s_per_file": 0.07,
        "cores_busy": 0.14,
        "rss_mb": {"rucio server": 300.0, "postgresql": 120.0},
        "total_rss_mb": 420.0,
        "pss_mb": {"rucio server": 200.0, "postgresql": 40.0},
        "total_pss_mb": 240.0,
        "load_average": [2.0, 1.5, 1.0],
        "polling_listing_cpu_s": {"total": 0.5, "wall": 0.3, "rucio server": 0.4},
        "polling_listings_in_segment": 20,
        "polling_share_cpu_s_per_file": 0.05,
    }
    md = report.markdown(report.build([chunk(0)], {**META, "cpu": cpu}, counts([chunk(0)])))
    assert "| rucio server | 10.0 | 50.0 | 300 | 200 |" in md
    assert "| **total** | 14.0 | **70.0** | 420 | 240 |" in md
    assert md.index("| rucio server |") < md.index("| postgresql |") < md.index("| hermes |")
    assert "20 listings in the segment come to at most 50.0 ms per delivered file" in md


def test_the_cpu_section_adds_the_cost_above_idle_when_idle_was_measured() -> None:
    cpu = {
        "segment_s": 100.0,
        "delivered": 100,
        "files_per_s": 1.0,
        "cpu_s": {"conveyor": 30.0},
        "cpu_s_per_file": {"conveyor": 0.3},
        "total_cpu_s": 30.0,
        "total_cpu_s_per_file": 0.3,
        "cores_busy": 0.3,
        "rss_mb": {"conveyor": 150.0},
        "total_rss_mb": 150.0,
        "load_average": [2.0, 1.5, 1.0],
        "idle_cpu_s_per_s": {"conveyor": 0.25},
        "marginal_cpu_s_per_file": {"conveyor": 0.05},
        "total_marginal_cpu_s_per_file": 0.05,
    }
    md = report.markdown(report.build([chunk(0)], {**META, "cpu": cpu}, counts([chunk(0)])))
    assert "| conveyor | 30.0 | 300.0 | 150 | 0 | 50.0 |" in md  # no PSS measured: 0
    assert "| **total** | 30.0 | **300.0** | 150 | 0 | **50.0** |" in md
