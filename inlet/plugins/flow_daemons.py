"""The judge-evaluator and hermes with sub-second cycles, for a flow measured in seconds.

Rucio's daemon loop (``rucio.daemons.common.run_daemon``) waits at least one second between
two passes, whatever the sleep asked for, so every file waits half a second on average at
each daemon on its way (attach → transfer request, transfer done → event). These runners call
Rucio's own single-pass entry (``once=True``) in a loop of their own with a float sleep.

One behaviour is changed on purpose, without patching Rucio: when the evaluator finds a run
dataset's rows locked (the uploader attaching the next file at that moment), Rucio pauses that
dataset for a random 60-600 s (``paused_dids``), which stalls a file-per-second stream for
minutes. The evaluator here keeps one pause book across passes that caps every pause at
``max_pause`` seconds; the dataset is simply re-evaluated on a later pass.

``RUCIO_CONFIG`` must be set before this module is imported: Rucio reads it once.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class CappedPauses(dict[tuple[str, str], dt.datetime]):
    """Rucio's ``paused_dids`` book, with every pause cut to at most ``max_pause`` seconds."""

    def __init__(self, max_pause: float) -> None:
        super().__init__()
        self.max_pause = max_pause

    def __setitem__(self, key: tuple[str, str], until: dt.datetime) -> None:
        # Rucio computes the deadline with naive utcnow(); keep the same clock.
        cap = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=self.max_pause)
        super().__setitem__(key, min(until, cap))


def repeat(name: str, one_pass: Callable[[], object], sleep: float, stop: threading.Event) -> None:
    """Call ``one_pass`` every ``sleep`` seconds until ``stop``; a failing pass is logged and retried."""
    while not stop.is_set():
        try:
            one_pass()
        except Exception:
            # Rucio's own loop logs and carries on too; a database restart must not end the daemon.
            log.exception("%s: pass failed; next pass in %.2f s", name, sleep)
        stop.wait(sleep)


def stop_on_signals(stop: threading.Event, *rucio_stops: Callable[[], object]) -> None:
    def handler(signum: int | None = None, frame: FrameType | None = None) -> None:
        log.info("stopping (signal %s)", signum)
        stop.set()
        for fn in rucio_stops:
            fn()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _serve(daemon: Any, run_once_fnc: Callable[..., object], sleep: float, once: bool, announce: str) -> None:
    """Rucio's single pass of ``daemon`` (its module) every ``sleep`` s until a signal; ``once``: one pass."""
    from rucio.daemons.common import run_daemon

    def one_pass() -> None:
        run_daemon(
            once=True,
            graceful_stop=daemon.graceful_stop,
            executable=daemon.DAEMON_NAME,
            partition_wait_time=0,
            sleep_time=1,
            run_once_fnc=run_once_fnc,
        )

    if once:
        one_pass()
        return
    stop = threading.Event()
    stop_on_signals(stop, daemon.stop)
    log.info("%s", announce)
    repeat(daemon.DAEMON_NAME, one_pass, sleep, stop)


def run_judge_evaluator(sleep: float, max_pause: float, did_limit: int = 100, once: bool = False) -> None:
    from rucio.daemons.judge import evaluator

    pass_fn = functools.partial(evaluator.run_once, did_limit=did_limit, paused_dids=CappedPauses(max_pause))
    announce = f"judge-evaluator: a pass every {sleep:.2f} s, locked datasets paused at most {max_pause:.1f} s"
    _serve(evaluator, pass_fn, sleep, once, announce)


def run_hermes(sleep: float, bulk: int = 1000, once: bool = False) -> None:
    from rucio.daemons.hermes import hermes

    _serve(hermes, functools.partial(hermes.run_once, bulk=bulk), sleep, once, f"hermes: a pass every {sleep:.2f} s")
