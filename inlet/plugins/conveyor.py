"""Rucio's own conveyor loops (submitter, poller, finisher) in one process, with gfal2 registered.

Rucio's ``rucio-conveyor-*`` scripts cannot load a transfertool that is not in their registry,
and each waits ~10 s for partition balancing at start. This runner registers
:class:`~rucio_inlet.transfertool.Gfal2Transfertool`, then calls the very same daemon
functions in threads of one process (the gfal2 copies live in that process, so its poller
must be there too), with ``partition_wait_time=0`` and the sleeps given.

``RUCIO_CONFIG`` must be set before this module is imported: Rucio reads it once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConveyorOptions:
    submitter_sleep: float = 1.0
    poller_sleep: float = 1.0
    finisher_sleep: float = 1.0
    bulk: int = 200
    #: The poller only looks at transfers submitted this long ago (Rucio's default is 60 s).
    poll_older_than: int = 0
    once: bool = False
    #: Woken by the lake's triggers (submitter, finisher) and by the copies themselves (poller)
    #: instead of a pass every *_sleep seconds; a pass at least every ``idle`` seconds.
    wake: bool = False
    idle: float = 10.0


class ConveyorConfigError(RuntimeError):
    """rucio.cfg does not select the gfal2 transfertool; the message names the fix."""


def selected_transfertool() -> str:
    """The site chooses the transfertool in rucio.cfg, as for Rucio's own conveyor; this runner is gfal2's."""
    from rucio.common.config import config_get_list

    chosen = [t.strip() for t in config_get_list("conveyor", "transfertool", False, []) if t.strip()]
    if "gfal2" not in chosen:
        raise ConveyorConfigError(
            f"rucio.cfg [conveyor] transfertool is {', '.join(chosen) or 'not set'}: "
            "set `transfertool = gfal2` there to run inlet's conveyor (sites with FTS keep rucio-conveyor-*)"
        )
    return "gfal2"


def run(opts: ConveyorOptions) -> None:
    """Run until SIGTERM/SIGINT (or one pass of each loop with ``once``).

    Each loop calls Rucio's single-pass entry (``once=True``) itself, every ``*_sleep`` seconds:
    Rucio's own loop waits at least one second between passes, and its looping poller marks each
    request it looks at and skips it for 10 minutes (``processed_at_delay``), right for FTS, whose
    completions arrive by messages, far too slow for copies that finish in a second. A one-pass
    call marks nothing.
    """
    from rucio.daemons.conveyor import finisher, poller, submitter
    from rucio_inlet.transfertool import Gfal2Transfertool, engine, register

    from inlet.plugins.flow_daemons import repeat, rucio_wakeups, stop_on_signals, waiter

    selected_transfertool()
    register()
    # gfal2 logs every HTTP header at INFO: keep its warnings, not its chatter.
    logging.getLogger("gfal2").setLevel(logging.WARNING)
    tt = Gfal2Transfertool.external_name
    passes: dict[str, tuple[Callable[[], None], float]] = {
        "submitter": (
            lambda: submitter.submitter(
                once=True,
                partition_wait_time=0,
                sleep_time=1,
                bulk=opts.bulk,
                transfertools=[tt],
                filter_transfertool=None,
            ),
            opts.submitter_sleep,
        ),
        "poller": (
            lambda: poller.poller(
                once=True,
                partition_wait_time=0,
                sleep_time=1,
                older_than=opts.poll_older_than,
                transfertool=tt,
                filter_transfertool=None,
                db_bulk=max(opts.bulk, 1000),
            ),
            opts.poller_sleep,
        ),
        "finisher": (
            lambda: finisher.finisher(once=True, partition_wait_time=0, sleep_time=1, bulk=opts.bulk),
            opts.finisher_sleep,
        ),
    }
    if opts.once:
        # In order, so that one pass submits, waits for the copies, polls and finishes.
        passes["submitter"][0]()
        engine().wait_idle()
        passes["poller"][0]()
        passes["finisher"][0]()
        return
    stopped = threading.Event()
    waits: dict[str, Callable[[], None] | None] = dict.fromkeys(passes)
    if opts.wake:
        wakeups = rucio_wakeups(["inlet_wake_submitter", "inlet_wake_finisher"])
        stop_on_signals(stopped, submitter.stop, poller.stop, finisher.stop, wakeups=wakeups)
        copies_done = threading.Event()
        waits["finisher"] = waiter(wakeups.events["inlet_wake_finisher"], opts.idle, stopped)
        waits["poller"] = _poller_wait(copies_done, opts.idle, stopped)
        wait_submitter = waiter(wakeups.events["inlet_wake_submitter"], opts.idle, stopped)
        submit = passes["submitter"][0]

        def submit_then_poll() -> None:
            # Hand the new copies to the poller: it waits on their completion, not on a clock.
            try:
                submit()
            finally:
                copies_done.set()

        passes["submitter"] = (submit_then_poll, opts.submitter_sleep)
        waits["submitter"] = wait_submitter
        log.info("conveyor: woken by the database and by finished copies, else a pass every %.1f s", opts.idle)
    else:
        stop_on_signals(stopped, submitter.stop, poller.stop, finisher.stop)
    loops = {
        name: (lambda n=name, f=fn, t=sleep: repeat(f"conveyor-{n}", f, t, stopped, waits[n]))
        for name, (fn, sleep) in passes.items()
    }
    threads = [threading.Thread(target=fn, name=f"conveyor-{name}", daemon=True) for name, fn in loops.items()]
    for t in threads:
        t.start()
    log.info("conveyor: submitter, poller and finisher running with transfertool %s", tt)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=1.0)
    engine().shutdown()


def _poller_wait(copies_done: threading.Event, idle: float, stop: threading.Event) -> Callable[[], None]:
    """The poller's wait: until a copy finishes (each copy sets ``copies_done`` when it does)."""
    from rucio_inlet.transfertool import engine

    from inlet.plugins.flow_daemons import waiter

    seen: set[int] = set()
    wait = waiter(copies_done, idle, stop)

    def poller_wait() -> None:
        # Copies submitted since the last wait: a callback each, which runs at once if the copy
        # already finished (after the pass looked, or the pass would have settled it).
        futures = engine().futures()
        alive = {id(f) for f in futures}
        for fut in futures:
            if id(fut) not in seen:
                seen.add(id(fut))
                fut.add_done_callback(lambda _f: copies_done.set())
        seen.intersection_update(alive)
        wait()

    return poller_wait
