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

Woken, not polling (``wake``): a pass every quarter second costs a quarter of a core at idle
and still makes each file wait half a sleep at every daemon. :func:`install_wake_triggers`
(called by ``inlet lake up`` and by the deployment's bootstrap) puts triggers on Rucio's tables
(:data:`WAKE_TRIGGERS`) that ``NOTIFY`` a channel per daemon when its work
arrives (a row in ``updated_dids`` for the evaluator, in ``messages`` for hermes, a request
QUEUED for the submitter, finished for the finisher); each daemon ``LISTEN``s and runs a pass as
soon as the committing transaction's notification comes, else once every ``idle`` seconds (work
no trigger announces: a paused dataset whose pause ends, a retry). Without the triggers (a site
database where they were not installed) the daemons still work, at the ``idle`` pace.

``RUCIO_CONFIG`` must be set before this module is imported: Rucio reads it once.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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

    def seconds_left(self) -> float | None:
        """Seconds until the first pause ends (None without pauses): the evaluator's next pass is due then."""
        if not self:
            return None
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return max(0.0, min((until - now).total_seconds() for until in self.values()))


#: Channel -> (table, trigger condition). One trigger per channel, installed by install_wake_triggers.
WAKE_TRIGGERS: dict[str, tuple[str, str]] = {
    # An attach, a new rule, a rule re-evaluation: the evaluator's input.
    "inlet_wake_evaluator": ("updated_dids", "AFTER INSERT ON updated_dids FOR EACH STATEMENT"),
    # Every event Rucio queues for hermes.
    "inlet_wake_hermes": ("messages", "AFTER INSERT ON messages FOR EACH STATEMENT"),
    # A new transfer request ready to submit. Not a retry (retry_count > 0): that one waits for
    # the next idle pass, a back-off, as FTS's retries have; retried at once, a copy to a storage
    # that is down uses up all its attempts in a second and the rule is STUCK.
    "inlet_wake_submitter": (
        "requests",
        "AFTER INSERT OR UPDATE OF state ON requests FOR EACH ROW "
        "WHEN (NEW.state::text = 'Q' AND coalesce(NEW.retry_count, 0) = 0)",
    ),
    # A transfer that ended, one way or another: what the finisher settles.
    "inlet_wake_finisher": (
        "requests",
        "AFTER UPDATE OF state ON requests FOR EACH ROW WHEN (NEW.state::text IN ('D','F','L','N','O','A','M','U'))",
    ),
}


def wake_triggers_sql() -> list[str]:
    """Idempotent DDL: the notifying function and one trigger per channel (PostgreSQL 14+).

    Statement-level where a row count does not matter; PostgreSQL folds identical
    notifications of one transaction into one, so a bulk insert wakes a daemon once.
    """
    out = [
        "CREATE OR REPLACE FUNCTION inlet_wake() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify(TG_ARGV[0], ''); RETURN NULL; END $$"
    ]
    for channel, (_table, when) in WAKE_TRIGGERS.items():
        out.append(f"CREATE OR REPLACE TRIGGER {channel} {when} EXECUTE FUNCTION inlet_wake('{channel}')")
    return out


def libpq_dsn(sqlalchemy_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (rucio.cfg [database] default) as libpq takes it."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql://{rest}"


def install_wake_triggers(sqlalchemy_url: str) -> None:
    """Install :func:`wake_triggers_sql` in Rucio's database (rucio.cfg [database] default).

    The one installer of the triggers: ``inlet lake up`` and a deployment's bootstrap
    (docker/inlet/bootstrap.sh) both call it. Idempotent; run it after Rucio's schema exists.
    Raises InletError (a one-line message for the caller to show) when the database is not
    PostgreSQL or refuses the DDL.
    """
    import psycopg

    from inlet.errors import InletError

    try:
        dsn = libpq_dsn(sqlalchemy_url)
    except ValueError as exc:
        raise InletError(
            f"the flow daemons' wake-up triggers need PostgreSQL as Rucio's database ({exc})",
            "leave them out: the daemons then run a pass every idle period (--idle)",
        ) from exc
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            for statement in wake_triggers_sql():
                conn.execute(statement)  # our own constant DDL
    except psycopg.Error as exc:
        raise InletError(
            f"could not install the flow daemons' wake-up triggers in Rucio's database: {exc}",
            "check that Rucio's schema exists and that [database] default may create triggers",
        ) from exc


class Wakeups:
    """One ``LISTEN`` connection per process; each notification sets its channel's event.

    After every (re)connection all events are set: work may have arrived unannounced while the
    connection was down, and a spare pass is cheap.
    """

    def __init__(self, dsn: str, channels: Iterable[str]) -> None:
        self.dsn = dsn
        self.events = {c: threading.Event() for c in channels}
        self.connected = threading.Event()
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="inlet-wakeups", daemon=True).start()

    def wake_all(self) -> None:
        for ev in self.events.values():
            ev.set()

    def stop(self) -> None:
        self._stop.set()
        self.wake_all()

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                    # One statement (channel names are ours, not input): pg_stat_activity then shows them all.
                    conn.execute("; ".join(f"LISTEN {c}" for c in self.events))
                    self.connected.set()
                    self.wake_all()
                    backoff = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=5.0):
                            ev = self.events.get(note.channel)
                            if ev is not None:
                                ev.set()
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("wake-ups: %s; passes every idle period until reconnected (in %.1f s)", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)


#: Shortest time between the starts of two passes of a woken daemon. Each pass has a fixed cost
#: (Rucio's heartbeat bookkeeping, a few queries: most of a pass's CPU when it finds one file's
#: work), and at 10 files a second the notifications come every few milliseconds: one pass per
#: notification made hermes and the conveyor cost 25-35 ms of CPU per file. A woken daemon that
#: passed less than this ago waits out the rest, and its next pass takes everything announced
#: meanwhile. A daemon that has been idle for longer passes at once: no latency at a slow rate.
MIN_GAP_S = 0.2


def waiter(
    event: threading.Event,
    idle: float,
    stop: threading.Event,
    due: Callable[[], float | None] = lambda: None,
    min_gap: float = MIN_GAP_S,
) -> Callable[[], None]:
    """A wait for ``repeat``: until ``event`` (work announced), ``due()`` seconds, or ``idle``
    seconds, and at least ``min_gap`` seconds after the previous wait ended (a pass began)."""
    last = [0.0]

    def wait() -> None:
        left = due()
        event.wait(idle if left is None else min(idle, left + 0.01))
        rest = last[0] + min_gap - time.monotonic()
        if rest > 0:
            stop.wait(rest)
        # Cleared just before the next pass: work announced during that pass sets it again.
        event.clear()
        last[0] = time.monotonic()

    return wait


def repeat(
    name: str,
    one_pass: Callable[[], object],
    sleep: float,
    stop: threading.Event,
    wait: Callable[[], None] | None = None,
) -> None:
    """Call ``one_pass`` until ``stop``, ``sleep`` seconds apart or whenever ``wait`` returns;
    a failing pass is logged and retried."""
    while not stop.is_set():
        try:
            one_pass()
        except Exception:
            # Rucio's own loop logs and carries on too; a database restart must not end the daemon.
            log.exception("%s: pass failed; next pass in %.2f s", name, sleep)
            if wait is not None:
                stop.wait(sleep)  # not at once: the failure's cause (a database restart) takes a while
        if stop.is_set():
            break
        if wait is None:
            stop.wait(sleep)
        else:
            wait()


def stop_on_signals(stop: threading.Event, *rucio_stops: Callable[[], object], wakeups: Wakeups | None = None) -> None:
    def handler(signum: int | None = None, frame: FrameType | None = None) -> None:
        log.info("stopping (signal %s)", signum)
        stop.set()
        if wakeups is not None:
            wakeups.stop()
        for fn in rucio_stops:
            fn()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def rucio_wakeups(channels: Iterable[str]) -> Wakeups:
    """Wake-ups on the database of rucio.cfg [database] default."""
    from rucio.common.config import config_get

    wakeups = Wakeups(libpq_dsn(config_get("database", "default")), channels)
    wakeups.start()
    return wakeups


@dataclass(frozen=True)
class Pace:
    """How a flow daemon paces its passes: every ``sleep`` s, or woken (``wake``) with a pass at
    least every ``idle`` s."""

    sleep: float = 1.0
    wake: bool = False
    idle: float = 10.0


def _serve(
    daemon: Any,
    run_once_fnc: Callable[..., object],
    pace: Pace,
    once: bool,
    announce: str,
    channel: str,
    due: Callable[[], float | None] = lambda: None,
) -> None:
    """Rucio's single pass of ``daemon`` (its module) until a signal, paced by ``pace``; ``once``: one pass."""
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
    if pace.wake:
        wakeups = rucio_wakeups([channel])
        stop_on_signals(stop, daemon.stop, wakeups=wakeups)
        wait: Callable[[], None] | None = waiter(wakeups.events[channel], pace.idle, stop, due)
        log.info("%s; woken by %s, else a pass every %.1f s", announce, channel, pace.idle)
    else:
        stop_on_signals(stop, daemon.stop)
        wait = None
        log.info("%s; a pass every %.2f s", announce, pace.sleep)
    repeat(daemon.DAEMON_NAME, one_pass, pace.sleep, stop, wait)


def run_judge_evaluator(pace: Pace, max_pause: float, did_limit: int = 100, once: bool = False) -> None:
    from rucio.daemons.judge import evaluator

    pauses = CappedPauses(max_pause)
    pass_fn = functools.partial(evaluator.run_once, did_limit=did_limit, paused_dids=pauses)
    announce = f"judge-evaluator: locked datasets paused at most {max_pause:.1f} s"
    _serve(evaluator, pass_fn, pace, once, announce, "inlet_wake_evaluator", pauses.seconds_left)


def run_hermes(pace: Pace, bulk: int = 1000, once: bool = False) -> None:
    from rucio.daemons.hermes import hermes

    _serve(hermes, functools.partial(hermes.run_once, bulk=bulk), pace, once, "hermes", "inlet_wake_hermes")
