"""``inlet rehearse --chaos`` on the real lake: the broker, the Rucio server and the uploader worker
are killed -9 while chunks move, and restarted; nothing may be lost, corrupted or done twice.

The short run CI affords (issue #19): 60 chunks, one kill each of ActiveMQ, the Rucio server
and the rehearsal's uploader worker. The command runs as a user runs it (a child process), and
after the run the test reads back, itself, what the report claims: the run's transitions from
the catalogue, its rules from Rucio (the plain ``rucio`` CLI) and the fault timeline from
``report.json``. No timing is asserted: recoveries are reported, not judged.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rucio_inlet.catalog_models import Run, RunTransition
from sqlalchemy import select

from inlet.catalog import open_catalog
from inlet.lake.lake import Lake
from inlet.lake.services.mariadb import MariaDB

BIN = Path(sys.executable).parent

PLAN = """
[[fault]]
target = "broker"
at = 4
pause = 3

[[fault]]
target = "rucio"
at = 12
pause = 3

[[fault]]
target = "worker"
at = 20
pause = 3
"""


@pytest.fixture(scope="module")
def chaos_run(
    lake: Lake, rucio_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("chaos")
    plan = out / "plan.toml"
    plan.write_text(PLAN)
    res = subprocess.run(
        [
            str(BIN / "inlet"),
            "rehearse",
            "--no-lake",
            "--duration",
            "60",
            "--speedup",
            "2",
            "--poll-interval",
            "2",
            "--drain-timeout",
            "300",
            "--report-dir",
            str(out),
            "--chaos",
            str(plan),
        ],
        env=rucio_env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, res.stderr[-4000:]
    summary = json.loads(lines[-1])
    doc = json.loads((Path(summary["report"]) / "report.json").read_text())
    return res, summary, doc


def test_the_short_chaos_run_passes_with_nothing_lost_corrupted_or_done_twice(
    chaos_run: tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]],
) -> None:
    res, summary, doc = chaos_run
    assert summary["chaos_failures"] == [], res.stderr[-4000:]
    assert res.returncode == 0, res.stderr[-4000:]
    assert summary["sent"] == summary["downloaded_events"] == summary["downloaded_polling"] == 60
    assert summary["lost_events"] == summary["lost_polling"] == 0
    assert summary["corrupted_events"] == summary["corrupted_polling"] == 0
    chaos = doc["meta"]["chaos"]
    assert chaos["duplicate_downloads"] == {"events": 0, "polling": 0}
    eff = chaos["effects"]
    assert eff["duplicate_transitions"] == eff["duplicate_reco_jobs"] == eff["duplicate_daq_releases"] == 0
    assert eff["reco_jobs_run"] == 1
    assert chaos["run_state"] == "RECONSTRUCTED" and chaos["rules_not_ok"] == []


def test_every_fault_really_happened_and_its_part_came_back(
    chaos_run: tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]], lake: Lake
) -> None:
    _, _, doc = chaos_run
    faults = doc["meta"]["chaos"]["faults"]
    assert [f["target"] for f in faults] == ["broker", "rucio", "worker"]
    for f in faults:
        assert f["pid"] and f["killed_at"] and f["ready_at"] > f["killed_at"], f
        assert f["error"] is None, f
        # Recovery is measured (first chunk after the restart, backlog drained), not judged. Its
        # backlog was delivered in full; no chunk after the restart means none was left by then
        # (the backlog drained while the part was still down: 0 s).
        assert f["drained_s"] is not None, f
        assert f["first_delivery_s"] is not None or f["drained_s"] == 0.0, f
    # The lake's own services were killed and restarted under new pids, and are up.
    status = {s.name: s for s in lake.status()}
    assert status["activemq"].ok and status["rucio"].ok
    assert status["activemq"].pid != faults[0]["pid"] and status["rucio"].pid != faults[1]["pid"]


def test_the_catalogue_and_rucio_confirm_the_life_cycle_happened_once(
    chaos_run: tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]],
    lake: Lake,
    rucio_env: dict[str, str],
) -> None:
    _, _, doc = chaos_run
    run = doc["meta"]["run"]
    # The chaos run's catalogue: the configured one, else the lake's MariaDB (runner._chaos_catalog).
    url = lake.settings.catalog.url or MariaDB(lake.settings, lake.paths).url
    catalog = open_catalog(url, migrate=False)
    try:
        with catalog.session() as s:
            run_id = s.scalar(select(Run.id).where(Run.experiment == "virgo", Run.run_number == run))
            moves = [
                (f, t)
                for f, t in s.execute(
                    select(RunTransition.from_state, RunTransition.to_state).where(RunTransition.run_id == run_id)
                )
            ]
    finally:
        catalog.dispose()
    assert moves[-3:] == [("UPLOADED", "ON_S3"), ("ON_S3", "ON_TAPE"), ("ON_TAPE", "RECONSTRUCTED")]
    assert len(moves) == len(set(moves))
    res = subprocess.run(
        [str(BIN / "rucio"), "rule", "list", "--did", f"virgo.raw:run{run:06d}.raw"],
        env=rucio_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [ln for ln in res.stdout.splitlines() if f"run{run:06d}.raw" in ln]
    assert len(rows) == 3, res.stdout  # site A, S3, TAPE
    assert all(" OK" in ln for ln in rows), res.stdout


def test_the_report_draws_the_faults_over_the_latency_plot(
    chaos_run: tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]],
) -> None:
    _, summary, _ = chaos_run
    md = (Path(summary["report"]) / "report.md").read_text()
    assert "## Chaos" in md and "**Passed**" in md
    for target in ("broker", "rucio", "worker"):
        assert f"| {target} |" in md


def test_a_bad_chaos_plan_is_one_line_with_the_fix(rucio_env: dict[str, str], tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[fault]]\ntarget = "the-moon"\nat = 1\n')
    res = subprocess.run(
        [str(BIN / "inlet"), "rehearse", "--no-lake", "--duration", "10", "--chaos", str(plan)],
        env=rucio_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode != 0
    assert "unknown target 'the-moon'" in res.stderr and "Traceback" not in res.stderr


def test_restarted_services_keep_the_lakes_own_configuration(
    chaos_run: tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]], lake: Lake
) -> None:
    """The chaos run's catalogue is its own: the Rucio server it restarted still reads the lake's
    catalogue (rucio.cfg rewritten with the run's would send every later user's metadata there)."""
    faults = chaos_run[2]["meta"]["chaos"]["faults"]
    assert any(f["target"] == "rucio" and f["ready_at"] for f in faults)  # the server was restarted
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(lake.paths.rucio_cfg)
    assert cfg.get("metadata", "inlet_catalog_url") == lake.settings.catalog_url()
