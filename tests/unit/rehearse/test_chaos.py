"""The chaos plan (file or seed), the fault injector's order of play, and the recovery figures."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from inlet.rehearse.chaos import TARGETS, ChaosError, ChaosPlan, Fault, FaultInjector, recovery
from inlet.rehearse.report import chaos_section
from inlet.rehearse.timeline import ChunkTimes


def test_a_seed_gives_every_target_once_the_same_plan_every_time() -> None:
    a, b = ChaosPlan.load("19", 900), ChaosPlan.load("19", 900)
    assert sorted(f.target for f in a.faults) == sorted(TARGETS)
    assert [(f.target, f.at, f.pause) for f in a.faults] == [(f.target, f.at, f.pause) for f in b.faults]
    assert [f.at for f in a.faults] == sorted(f.at for f in a.faults)
    assert all(0 <= f.at <= 900 and 3 <= f.pause <= 10 for f in a.faults)
    assert ChaosPlan.load("20", 900).faults != a.faults


def test_a_plan_file_in_toml_or_json(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('[[fault]]\ntarget = "rucio"\nat = 9\npause = 2\n\n[[fault]]\ntarget = "broker"\nat = 3\n')
    plan = ChaosPlan.load(str(toml), 60)
    assert [(f.target, f.at, f.pause) for f in plan.faults] == [("broker", 3, 5.0), ("rucio", 9, 2)]
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"fault": [{"target": "worker", "at": 1}]}))
    assert ChaosPlan.load(str(js), 60).faults[0].target == "worker"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[fault]]\ntarget = "moon"\nat = 1\n', "unknown target 'moon'"),
        ('[[fault]]\ntarget = "broker"\nat = -1\n', "give seconds"),
        ('[[fault]]\ntarget = "broker"\nat = 100\n', "after the last chunk"),
        ('[[fault]]\ntarget = "broker"\nat = 1\nsignal = 9\n', "needs target and at"),
        ('[[fault]]\ntarget = "broker"\nat = "soon"\n', "at and pause are seconds"),
        ("fault = 3\n", "no list of faults"),
        ("[[fault\n", "unreadable"),
    ],
)
def test_a_bad_plan_is_refused_with_what_to_do(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ChaosError, match=message):
        ChaosPlan.load(str(path), 60)


def test_neither_a_seed_nor_a_file() -> None:
    with pytest.raises(ChaosError, match="neither a seed nor a plan file"):
        ChaosPlan.load("/nonexistent/plan.toml", 60)


def test_the_injector_kills_then_restarts_each_part_in_order_after_its_pause() -> None:
    calls: list[tuple[str, str, float]] = []
    plan = ChaosPlan([Fault("worker", 0.1, 0.2), Fault("broker", 0.0, 0.1)])
    plan.check()

    def kill(t: str) -> int:
        calls.append(("kill", t, time.monotonic()))
        return 42

    def restart(t: str) -> None:
        calls.append(("restart", t, time.monotonic()))

    inj = FaultInjector(plan, kill, restart)
    inj.start(time.time())
    assert inj.wait_done(10)
    assert [(a, t) for a, t, _ in calls] == [
        ("kill", "broker"),
        ("restart", "broker"),
        ("kill", "worker"),
        ("restart", "worker"),
    ]
    assert calls[1][2] - calls[0][2] >= 0.1 and calls[3][2] - calls[2][2] >= 0.2
    for f in plan.faults:
        assert f.pid == 42 and f.killed_at and f.ready_at and f.ready_at >= f.killed_at and f.error is None


def test_a_restart_that_fails_is_retried_and_its_error_kept() -> None:
    plan = ChaosPlan([Fault("redis", 0.0, 0.0)])
    attempts = []

    def restart(t: str) -> None:
        attempts.append(t)
        raise RuntimeError("port in use")

    inj = FaultInjector(plan, lambda t: None, restart)
    done = threading.Event()
    inj.start(time.time())
    done.set()
    assert inj.wait_done(20)
    assert len(attempts) == 3
    assert plan.faults[0].ready_at is None and "port in use" in (plan.faults[0].error or "")


def _chunk(i: int, closed: float, done: float | None) -> ChunkTimes:
    c = ChunkTimes(i, f"c{i}", 1, "x", closed)
    if done is not None:
        c.event_done, c.event_status = done, "downloaded"
    return c


def test_recovery_measures_first_delivery_backlog_drained_and_latency_cost() -> None:
    # One chunk a second; calm chunks take 1 s. The part is killed at 10, back at 15: chunks
    # closed from 9 to 15 wait, and are delivered 16..19 after the restart.
    chunks = [_chunk(i, float(i), i + 1.0) for i in range(30)]
    for i, done in zip(range(9, 16), (16, 16.5, 17, 17.5, 18, 18.5, 19), strict=True):
        chunks[i].event_done = done
    faults = [{"target": "broker", "at": 10, "pause": 5, "killed_at": 10.0, "ready_at": 15.0}]
    (row,) = recovery(faults, chunks)
    assert row["down_s"] == 5.0
    assert row["first_delivery_s"] == 1.0  # chunk 9 at 16
    assert row["backlog"] == 7  # chunks 9..15: not delivered by the kill, closed before the restart
    assert row["drained_s"] == 4.0  # the last of them at 19
    assert row["baseline_e2e_s"] == 1.0
    assert row["extra_latency_s"] > 0 and row["median_e2e_s"] > 1.0
    faults[0].update(row)
    md = "\n".join(
        chaos_section({"source": "seed 1", "faults": faults, "failures": [], "effects": {}, "duplicate_downloads": {}})
    )
    assert "**Passed**" in md and "| broker | 10.0 | 5.0 | 5.0 | 1.0 | 7 | 4.0 |" in md


def test_a_lost_chunk_leaves_the_backlog_undrained() -> None:
    chunks = [_chunk(i, float(i), i + 1.0) for i in range(10)]
    chunks[5].event_done, chunks[5].event_status = None, None
    (row,) = recovery([{"target": "s3", "at": 5, "pause": 1, "killed_at": 5.0, "ready_at": 6.0}], chunks)
    assert row["drained_s"] is None and row["backlog"] == 2


def test_collateral_restarts_start_a_dead_daemon_group_once_not_its_members() -> None:
    """PostgreSQL's kill takes down the grouped Rucio daemons: the group is restarted, and its
    members' rows (threads of that process) are neither restarted nor reported as failures."""
    from types import SimpleNamespace

    from inlet.lake.lake import ServiceStatus
    from inlet.rehearse.runner import Rehearsal

    restarted: list[str] = []
    rows = [
        ServiceStatus("postgres", "up", 1, "127.0.0.1:1"),
        ServiceStatus("rucio-daemons", "dead", 2, "-"),
        ServiceStatus("rucio-reaper", "dead", 2, "in rucio-daemons"),
        ServiceStatus("rucio-undertaker", "dead", 2, "in rucio-daemons"),
        ServiceStatus("rucio-hermes", "dead", 3, "-"),
    ]
    lake = SimpleNamespace(
        managed=lambda: [SimpleNamespace(name=n) for n in ("postgres", "rucio-daemons", "rucio-hermes")],
        status=lambda: rows,
        restart=lambda name: restarted.append(name),
    )
    runner = SimpleNamespace(notes=[])
    Rehearsal._restart_collateral(runner, lake, "postgres")  # type: ignore[arg-type]
    assert restarted == ["rucio-daemons", "rucio-hermes"]
    assert runner.notes == [
        "rucio-daemons died when postgres was killed; restarted",
        "rucio-hermes died when postgres was killed; restarted",
    ]
