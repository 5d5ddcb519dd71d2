"""``inlet rehearse`` on the real lake: a short, sped-up dress rehearsal end to end.

The command runs as a user runs it (a child process, its own Celery worker, the lake's Rucio,
conveyor, hermes and ActiveMQ). The report is read back from disk, and the run dataset is
checked through the plain `rucio` CLI, not through inlet's code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from inlet.lake.lake import Lake

BIN = Path(sys.executable).parent


def rehearse(env: dict[str, str], out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    res = subprocess.run(
        [
            str(BIN / "inlet"),
            "rehearse",
            "--no-lake",
            "--report-dir",
            str(out),
            "--poll-interval",
            "1",
            "--drain-timeout",
            "120",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return res, summary


@pytest.fixture(scope="module")
def short(rucio_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    res, summary = rehearse(rucio_env, tmp_path_factory.mktemp("rehearsal"), "--duration", "30", "--speedup", "5")
    assert summary, res.stderr[-3000:]
    return res.returncode, summary, Path(summary["report"])


def test_every_chunk_is_uploaded_replicated_and_downloaded_by_both_downloaders(
    short: tuple[int, dict[str, Any], Path],
) -> None:
    code, summary, _ = short
    assert code == 0
    assert summary["sent"] == summary["uploaded"] == summary["replicated"] == 30
    assert summary["downloaded_events"] == summary["downloaded_polling"] == 30
    assert summary["corrupted_events"] == summary["corrupted_polling"] == 0
    assert summary["lost_events"] == summary["lost_polling"] == 0


def test_the_report_holds_the_counts_and_every_chunks_timestamps(short: tuple[int, dict[str, Any], Path]) -> None:
    _, summary, out = short
    doc = json.loads((out / "report.json").read_text())
    assert doc["counts"] == {k: v for k, v in summary.items() if k != "report"}
    assert len(doc["chunks"]) == 30
    for c in doc["chunks"]:
        # Every hop of the event-driven path was seen, in order.
        times = [
            c[k]
            for k in ("closed", "registered", "submitted", "transferred", "available_b", "event_seen", "event_done")
        ]
        assert None not in times, c
        assert c["closed"] <= c["registered"] <= c["event_done"]
        assert c["available_b"] <= c["event_seen"] <= c["event_done"]
        assert c["poll_seen"] is not None and c["poll_done"] >= c["poll_seen"]
    hops = {h["hop"]: h for h in doc["hops"]}
    assert hops["end to end (events)"]["n"] == hops["end to end (polling)"]["n"] == 30
    assert doc["meta"]["run_state"] == "UPLOADED"
    md = (out / "report.md").read_text()
    assert "| 30 | 30 | 30 | 30 | 30 | 0/0 | 0/0 | 0 |" in md
    assert "Chunks not downloaded cleanly" not in md


def test_the_plots_are_valid_pngs(short: tuple[int, dict[str, Any], Path]) -> None:
    _, _, out = short
    for name in ("hops.png", "latency-over-time.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not a blank canvas
        assert f"({name})" in (out / "report.md").read_text()


def test_rucio_sees_the_closed_run_dataset_with_every_chunk(
    short: tuple[int, dict[str, Any], Path], rucio_env: dict[str, str]
) -> None:
    _, _, out = short
    run = json.loads((out / "report.json").read_text())["meta"]["run"]
    res = subprocess.run(
        [str(BIN / "rucio"), "did", "show", f"virgo.raw:run{run:06d}.raw"],
        env=rucio_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    fields = dict(line.split(":", 1) for line in res.stdout.splitlines() if ":" in line)
    assert fields["length"].strip() == "30"
    assert fields["open"].strip() == "False"


def test_a_chunk_corrupted_at_site_b_is_reported_corrupted_not_downloaded(
    rucio_env: dict[str, str], tmp_path: Path
) -> None:
    res, summary = rehearse(rucio_env, tmp_path, "--duration", "10", "--speedup", "5", "--corrupt", "4")
    assert summary, res.stderr[-3000:]
    assert res.returncode == 0  # the drilled chunk was caught, as expected
    assert summary["corrupted_events"] == summary["corrupted_polling"] == 1
    assert summary["downloaded_events"] == summary["downloaded_polling"] == 9
    assert summary["lost_events"] == summary["lost_polling"] == 0
    doc = json.loads((Path(summary["report"]) / "report.json").read_text())
    bad = doc["chunks"][4]
    assert bad["drill"] is True
    assert bad["event_status"] == bad["poll_status"] == "corrupted"
    assert "written by the DAQ" in bad["event_error"]
    assert all(c["event_status"] == "downloaded" for c in doc["chunks"] if c["index"] != 4)
    assert f"| {bad['name']} | corrupted | corrupted | adler32" in (Path(summary["report"]) / "report.md").read_text()


def test_an_unknown_site_b_is_refused_with_the_fix(rucio_env: dict[str, str], tmp_path: Path, lake: Lake) -> None:
    res, summary = rehearse(rucio_env, tmp_path, "--duration", "3", "--rse", "NO_SUCH_RSE")
    assert res.returncode == 2
    assert not summary
    err = " ".join(res.stderr.split())
    assert "site B 'NO_SUCH_RSE'" in err
    assert "rucio rse list" in err


def test_ctrl_c_stops_the_daq_and_still_reports_every_chunk_sent(rucio_env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            str(BIN / "inlet"),
            "rehearse",
            "--no-lake",
            "--report-dir",
            str(tmp_path),
            "--poll-interval",
            "1",
            "--duration",
            "600",
            "--speedup",
            "2",
        ],
        env=rucio_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once the DAQ is writing (the worker log says it is ready, and chunks exist).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            logs = list(tmp_path.glob("*/worker.log"))
            if logs and b"ready." in logs[0].read_bytes() and list(tmp_path.glob("*/daq/*.gwf*")):
                break
            time.sleep(0.5)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]  # a partial rehearsal is not a pass
    assert "stopping: no more chunks" in " ".join(err.split())
    summary = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert 0 < summary["sent"] < 1200
    assert summary["downloaded_events"] == summary["downloaded_polling"] == summary["sent"]
    assert summary["lost_events"] == summary["lost_polling"] == 0
    doc = json.loads((Path(summary["report"]) / "report.json").read_text())
    assert any("interrupted after" in n for n in doc["meta"]["notes"])
    assert doc["meta"]["run_state"] == "UPLOADED"  # the run dataset was closed with the chunks sent


def test_the_report_gives_the_lake_cpu_per_delivered_file_per_process_group(
    short: tuple[int, dict[str, Any], Path],
) -> None:
    _, _, out = short
    cpu = json.loads((out / "report.json").read_text())["meta"]["cpu"]
    # The segment starts after the first tenth (3 chunks) and ends once every chunk is delivered.
    assert 27 <= cpu["delivered"] <= 30
    # Every process that moved a file spent CPU in the segment, read from the real processes.
    for group in ("rucio server", "postgresql", "conveyor", "hermes", "uploader worker", "downloaders"):
        assert cpu["cpu_s"][group] > 0, group
    assert cpu["total_cpu_s_per_file"] == pytest.approx(cpu["total_cpu_s"] / cpu["delivered"])
    assert cpu["polling_listing_cpu_s"]["total"] > 0
    assert "## Lake CPU per delivered file" in (out / "report.md").read_text()
    # Memory beside CPU: PSS (shared pages divided among their sharers) never above RSS, and the
    # broker's own memory, read from the real broker at the end of the segment.
    for group, rss in cpu["rss_mb"].items():
        assert 0 <= cpu["pss_mb"][group] <= rss, group
    assert 0 < cpu["total_pss_mb"] <= cpu["total_rss_mb"]
    assert cpu["broker_memory"]["limit_bytes"] == 96 * 2**20
    assert 0 <= cpu["broker_memory"]["percent"] < 100
