"""The judge-evaluator's capped pause book and the pass loop shared by the flow daemons."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from inlet.config import RulePolicy
from inlet.plugins.flow_daemons import CappedPauses, repeat


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
