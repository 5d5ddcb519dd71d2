"""The judge-evaluator's capped pause book and the pass loop shared by the flow daemons."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from inlet.config import RulePolicy
from inlet.errors import InletError
from inlet.plugins.flow_daemons import (
    WAKE_TRIGGERS,
    CappedPauses,
    install_wake_triggers,
    libpq_dsn,
    repeat,
    waiter,
    wake_triggers_sql,
)


def test_a_pause_rucio_asks_for_is_cut_to_the_cap() -> None:
    pauses = CappedPauses(2.0)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    pauses[("virgo.raw", "run000001.raw")] = now + dt.timedelta(seconds=600)
    until = pauses[("virgo.raw", "run000001.raw")]
    assert dt.timedelta(seconds=1.5) < until - now <= dt.timedelta(seconds=2.5)


def test_a_shorter_pause_is_kept() -> None:
    pauses = CappedPauses(60.0)
    soon = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1)
    pauses[("s", "n")] = soon
    assert pauses[("s", "n")] == soon


def test_a_failing_pass_does_not_end_the_loop() -> None:
    calls: list[int] = []
    stop = threading.Event()

    def one_pass() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database restarting")
        if len(calls) == 3:
            stop.set()

    repeat("test", one_pass, 0.001, stop)
    assert len(calls) == 3


def test_per_file_rules_refuse_dataset_notifications() -> None:
    with pytest.raises(ValueError, match="per_file rules take notify 'Y' or 'N'"):
        RulePolicy(rse_expression="SITE_B_DISK", per_file=True, notify="C")
    assert RulePolicy(rse_expression="SITE_B_DISK", per_file=True, notify="Y").per_file


def test_the_evaluator_is_due_when_the_first_pause_ends() -> None:
    pauses = CappedPauses(5.0)
    assert pauses.seconds_left() is None
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    pauses[("s", "a")] = now + dt.timedelta(seconds=3)
    pauses[("s", "b")] = now + dt.timedelta(seconds=600)
    left = pauses.seconds_left()
    assert left is not None and 2.0 < left <= 3.0


def test_a_woken_loop_runs_one_pass_per_wake_up_and_none_in_between() -> None:
    stop, event = threading.Event(), threading.Event()
    passes: list[int] = []
    woken = threading.Event()

    def one_pass() -> None:
        passes.append(1)
        woken.set()
        if len(passes) == 3:
            stop.set()

    # idle of an hour: only the event can bring the second and third passes.
    t = threading.Thread(target=repeat, args=("t", one_pass, 0.001, stop, waiter(event, 3600, stop)))
    t.start()
    for _ in range(2):
        assert woken.wait(30)
        woken.clear()
        event.set()
    t.join(30)
    assert not t.is_alive() and len(passes) == 3


def test_a_pause_ending_wakes_the_loop_without_a_notification() -> None:
    stop, event = threading.Event(), threading.Event()
    passes: list[int] = []

    def one_pass() -> None:
        passes.append(1)
        if len(passes) == 2:
            stop.set()

    t = threading.Thread(target=repeat, args=("t", one_pass, 0.001, stop, waiter(event, 3600, stop, lambda: 0.0)))
    t.start()
    t.join(30)
    assert not t.is_alive() and len(passes) == 2


def test_each_channel_has_a_trigger_and_retries_do_not_wake_the_submitter() -> None:
    sql = wake_triggers_sql()
    assert sql[0].startswith("CREATE OR REPLACE FUNCTION inlet_wake()")
    for channel in WAKE_TRIGGERS:
        assert sum(f"TRIGGER {channel} " in stmt and f"inlet_wake('{channel}')" in stmt for stmt in sql) == 1
    assert "retry_count" in WAKE_TRIGGERS["inlet_wake_submitter"][1]


def test_rucios_database_url_becomes_a_libpq_one() -> None:
    assert (
        libpq_dsn("postgresql+psycopg://rucio:p%40ss@127.0.0.1:5/rucio")
        == "postgresql://rucio:p%40ss@127.0.0.1:5/rucio"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        libpq_dsn("mysql+pymysql://u@h/db")


def test_the_trigger_installer_refuses_a_database_that_is_not_postgresql() -> None:
    # One line for the deployment's bootstrap to print, and the idle pace named as the way out.
    with pytest.raises(InletError, match="need PostgreSQL") as err:
        install_wake_triggers("mysql+pymysql://u@h/db")
    assert "idle" in err.value.fix


def test_a_woken_daemon_passes_at_once_after_a_quiet_spell_and_at_most_every_min_gap_in_a_burst() -> None:
    import time

    stop, event = threading.Event(), threading.Event()
    # The first notification after a quiet spell: no wait for the gap (a minute here; the join
    # is only a bound against a hang).
    wait = waiter(event, 3600, stop, min_gap=60)
    event.set()
    t = threading.Thread(target=wait)
    t.start()
    t.join(30)
    assert not t.is_alive()
    # A burst: the next pass waits out the rest of the gap and takes what came meanwhile.
    wait = waiter(event, 3600, stop, min_gap=0.3)
    event.set()
    wait()
    t0 = time.monotonic()
    event.set()
    wait()
    assert time.monotonic() - t0 >= 0.25
    assert not event.is_set()
