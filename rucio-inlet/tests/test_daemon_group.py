"""rucio_inlet.daemon_group: Rucio's own daemon entry points as threads of one process.

The real daemons against the real lake are in the inlet repository's integration tests (the
lake runs its slow daemons this way); here, their command lines and the group's own logic:
whose thread a log record comes from, and when the group ends.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from rucio_inlet import daemon_group
from rucio_inlet.daemon_group import Daemon, Group, OwnedBy, owner, run_kwargs

#: The daemons and options the inlet lake runs in one group.
LAKE_SPECS = [
    "judge-repairer --sleep-time 1",
    "judge-cleaner --sleep-time 1",
    "judge-injector --sleep-time 1",
    "reaper --sleep-time 2 --chunk-size 100",
    "undertaker --sleep-time 1",
    "abacus-account --sleep-time 1",
    "abacus-rse --sleep-time 1",
]


@pytest.mark.parametrize("spec", LAKE_SPECS)
def test_each_daemon_is_parsed_by_its_own_scripts_parser_into_its_run_arguments(spec: str) -> None:
    d = daemon_group.load(spec)
    assert d.name == spec.split()[0]
    assert d.kwargs["once"] is False
    assert d.kwargs["sleep_time"] == int(spec.split("--sleep-time ")[1].split()[0])
    assert d.run.__module__.startswith("rucio.daemons.")
    if d.name == "reaper":
        assert d.kwargs["chunk_size"] == 100


def test_an_option_a_daemon_does_not_take_is_refused_by_its_parser() -> None:
    with pytest.raises(SystemExit):
        daemon_group.load("undertaker --no-such-option 1")


@pytest.mark.parametrize("spec", ["", "../../bin/sh", "reaper;ls"])
def test_a_daemon_name_that_is_not_one_is_refused(spec: str) -> None:
    with pytest.raises(SystemExit):
        daemon_group.load(spec)


def test_options_become_run_parameters_and_one_run_does_not_take_is_refused() -> None:
    def run(once: bool = False, fill_history_table: bool = False, sleep_time: int = 60) -> None:
        pass

    ns = argparse.Namespace(run_once=True, enable_history=False, sleep_time=5)
    assert run_kwargs(run, ns) == {"once": True, "fill_history_table": False, "sleep_time": 5}
    with pytest.raises(SystemExit, match="threads"):
        run_kwargs(run, argparse.Namespace(threads=2))


def test_a_thread_belongs_to_the_daemon_its_name_starts_with() -> None:
    names = ["reaper", "undertaker"]
    assert owner("reaper/Thread-3", names) == "reaper"
    assert owner("reaper/run", names) == "reaper"
    assert owner("MainThread", names) is None
    assert owner("reaperish/Thread-1", names) is None
    assert owner("reaper", names) is None


def _record(thread_name: str) -> logging.LogRecord:
    r = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    r.threadName = thread_name
    return r


def test_each_daemons_records_pass_its_own_filter_alone() -> None:
    names = ["reaper", "undertaker"]
    reaper, undertaker, runner = OwnedBy("reaper", names), OwnedBy("undertaker", names), OwnedBy(None, names)
    r = _record("reaper/Thread-7")
    assert (reaper.filter(r), undertaker.filter(r), runner.filter(r)) == (True, False, False)
    m = _record("MainThread")
    assert (reaper.filter(m), undertaker.filter(m), runner.filter(m)) == (False, False, True)


class _Fake:
    """A daemon module: run() starts a worker thread and returns at once, as the reaper's does."""

    def __init__(self, worker_ends_by_itself: bool = False) -> None:
        self.stop_event = threading.Event()
        self.worker_ends_by_itself = worker_ends_by_itself
        self.started = threading.Event()

    def run(self, **_: Any) -> None:
        def work() -> None:
            logging.getLogger("fake").warning("working")
            self.started.set()
            if not self.worker_ends_by_itself:
                self.stop_event.wait(30)

        threading.Thread(target=work).start()

    def stop(self, *_: Any) -> None:
        self.stop_event.set()


@pytest.fixture
def routed(tmp_path: Path) -> Any:
    saved = threading.Thread.start
    root = logging.getLogger()
    before = list(root.handlers)
    yield tmp_path
    threading.Thread.start = saved  # type: ignore[method-assign]
    for h in root.handlers[len(before) :]:
        root.removeHandler(h)
        h.close()


def _setup(tmp_path: Path, names: list[str]) -> None:
    daemon_group.setup_logs(tmp_path, names)
    daemon_group.inherit_thread_names(names)


def test_a_run_that_returns_while_its_threads_work_is_running_and_stop_ends_the_group(routed: Path) -> None:
    a, b = _Fake(), _Fake()
    _setup(routed, ["a", "b"])
    group = Group([Daemon("a", a.run, a.stop, {}), Daemon("b", b.run, b.stop, {})])
    group.start()
    assert a.started.wait(10) and b.started.wait(10)
    assert not group.ended.wait(1.5), "a run() that returned is not a daemon that ended"
    group.stop()
    assert group.wait() == 0
    assert a.stop_event.is_set() and b.stop_event.is_set()
    # Each worker thread's record went to its own daemon's file.
    assert "working" in (routed / "rucio-a.log").read_text()
    assert "working" in (routed / "rucio-b.log").read_text()


def test_a_daemon_whose_threads_end_unasked_ends_the_group_with_its_reason_in_its_log(routed: Path) -> None:
    healthy, dying = _Fake(), _Fake(worker_ends_by_itself=True)
    _setup(routed, ["ok", "dies"])
    group = Group([Daemon("ok", healthy.run, healthy.stop, {}), Daemon("dies", dying.run, dying.stop, {})])
    group.start()
    assert group.wait() == 1
    assert healthy.stop_event.is_set(), "the others are stopped"
    assert "ended while nothing asked it to stop" in (routed / "rucio-dies.log").read_text()
    assert "ended while nothing" not in (routed / "rucio-ok.log").read_text()


def test_a_daemon_whose_run_raises_ends_the_group_with_the_traceback_in_its_log(routed: Path) -> None:
    healthy = _Fake()

    def broken(**_: Any) -> None:
        raise RuntimeError("no database")

    _setup(routed, ["ok", "broken"])
    group = Group([Daemon("ok", healthy.run, healthy.stop, {}), Daemon("broken", broken, lambda *a: None, {})])
    group.start()
    assert group.wait() == 1
    text = (routed / "rucio-broken.log").read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: no database" in text
