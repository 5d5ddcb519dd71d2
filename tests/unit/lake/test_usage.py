"""CPU and RSS per process group, read from the lake's pid files and from plain pids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from inlet.config import Settings
from inlet.lake.services.base import LakePaths
from inlet.lake.usage import cpu_spent, group_of, lake_pids, pid_usage, sample, self_usage


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_current_process_cpu_grows_by_what_it_burns() -> None:
    before = sample(None, {"me": [os.getpid()]})
    _burn(0.2)
    after = sample(None, {"me": [os.getpid()]})
    spent = cpu_spent(before, after)
    assert spent["me"] >= 0.19
    assert after.groups["me"].rss > 0
    # PSS divides shared pages among their sharers: never more than RSS, never nothing for a live process.
    assert 0 < after.groups["me"].pss <= after.groups["me"].rss
    assert after.groups["me"].processes >= 1
    assert self_usage().cpu >= after.groups["me"].cpu - 0.01


def test_an_exited_child_keeps_its_cpu_in_the_tree() -> None:
    """A PostgreSQL backend or a gunicorn worker that exits during a segment still costs its CPU."""
    before = pid_usage([os.getpid()])
    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    subprocess.run([sys.executable, "-c", code], check=True)
    after = pid_usage([os.getpid()])
    assert after.cpu - before.cpu >= 0.29


def test_a_pid_listed_twice_or_inside_another_tree_counts_once() -> None:
    once = pid_usage([os.getpid()])
    twice = pid_usage([os.getpid(), os.getpid()])
    assert twice.processes == once.processes


def test_lake_services_are_found_from_their_pid_files(tmp_path: Path) -> None:
    settings = Settings(lake={"state_dir": tmp_path, "manage": ["rucio", "postgres"]})  # type: ignore[arg-type]
    run = LakePaths(tmp_path).run
    run.mkdir(parents=True)
    me = psutil.Process(os.getpid())
    (run / "rucio.pid").write_text(json.dumps({"pid": me.pid, "create_time": me.create_time(), "argv": []}))
    # A pid file whose start time does not match: the pid was reused, not the lake's.
    (run / "postgres.pid").write_text(json.dumps({"pid": me.pid, "create_time": 1.0, "argv": []}))
    assert lake_pids(settings) == {"rucio": me.pid}
    groups = sample(settings).groups
    assert set(groups) == {"rucio server"}
    assert groups["rucio server"].cpu > 0


def test_unnamed_services_are_other_daemons() -> None:
    assert group_of("rucio-judge-evaluator") == "judge-evaluator"
    assert group_of("rucio-reaper") == "other daemons"


def test_a_child_counted_in_an_earlier_group_is_not_counted_again() -> None:
    """The rehearsal's driver started the uploader worker: the worker's CPU is the worker's only."""
    code = "import time\nend = time.process_time() + 0.15\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while sum(psutil.Process(child.pid).cpu_times()[:2]) < 0.14 and time.monotonic() < deadline:
            time.sleep(0.05)
        s = sample(None, {"worker": [child.pid], "driver": [os.getpid()]})
        both = pid_usage([os.getpid()])
    finally:
        child.kill()
        child.wait()
    assert s.groups["worker"].cpu >= 0.12
    assert s.groups["driver"].processes == both.processes - 1
    assert s.groups["driver"].cpu <= both.cpu - 0.12
