"""Several of Rucio's slow daemons as threads of one process, each with its own log.

Each Rucio daemon is its own process of about 115-160 MB resident (the interpreter, SQLAlchemy
and the half of Rucio every daemon imports) that wakes every few seconds to find nothing to do.
The reaper, undertaker, judge repairer/cleaner/injector and the two abacus daemons share one
interpreter here: seven daemons for the memory of about one.

Every daemon still runs through Rucio's own entry point, unmodified: the ``run()`` its console
script (``rucio-<daemon>``) calls, with the arguments that script's own ``get_parser()`` parses,
so a daemon takes exactly the options it takes on its own. Each daemon's ``run()`` starts its
threads and registers its own heartbeats (executable ``reaper``, ``undertaker``...): to Rucio
they are separate daemons that happen to share a pid.

Logs. A thread started by a daemon's thread is named ``<daemon>/<name>``, and every log record
from a thread so named goes to that daemon's own file (``rucio-<daemon>.log`` in ``--log-dir``),
in Rucio's own format: a daemon's failing passes show up in its log alone, as they did when it
was a process of its own. Anything else (this runner's own messages) goes to stderr.

Ending. SIGTERM or SIGINT stops every daemon through its module's ``stop()``. A daemon whose
``run()`` returns or raises while nothing asked it to stop ends the whole process (exit 1),
its reason logged in its own file: a group that keeps running with one daemon missing would
look healthy from outside.

One pool. The daemons share one engine, and one pool of database connections
(``--db-pool``): seven daemons that each found a connection on their first pass would keep
seven PostgreSQL backends (about 20 MB resident each) for passes that seldom overlap.

Loaded by Rucio's interpreter (Python 3.9): imports nothing from inlet.
Usage: ``python -m rucio_inlet.daemon_group --log-dir DIR --daemon "reaper --sleep-time 2" ...``
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import runpy
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Optional

log = logging.getLogger("rucio_inlet.daemon_group")

#: Separates a daemon's name from the thread's own in a thread name.
SEP = "/"

#: Options of Rucio's daemon scripts whose ``run()`` parameter has another name.
RENAMED = {"run_once": "once", "enable_history": "fill_history_table"}

#: Seconds the main thread gives the daemons to end after stop().
STOP_WAIT_S = 15.0


@dataclass
class Daemon:
    """One of Rucio's daemons, as its console script would run it."""

    name: str
    run: Callable[..., Any]
    stop: Callable[..., Any]
    kwargs: dict[str, Any]


def script_path(name: str) -> str:
    """``rucio-<name>``: next to this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / f"rucio-{name}"
    if beside.is_file():
        return str(beside)
    found = shutil.which(f"rucio-{name}")
    if found is None:
        raise SystemExit(f"daemon_group: Rucio has no daemon script rucio-{name} (next to {sys.executable} or on PATH)")
    return found


def run_kwargs(run: Callable[..., Any], options: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``run()`` from a parsed command line, as the console script maps them.

    An option ``run()`` has no parameter for is refused rather than dropped silently.
    """
    params = inspect.signature(run).parameters
    out: dict[str, Any] = {}
    for dest, value in vars(options).items():
        param = RENAMED.get(dest, dest)
        if param not in params:
            raise SystemExit(f"daemon_group: {run.__module__}.run() takes no {param!r} (option {dest!r})")
        out[param] = value
    return out


def load(spec: str) -> Daemon:
    """A daemon from ``"<name> [options...]"``, parsed by the daemon's own script's parser."""
    words = shlex.split(spec)
    if not words:
        raise SystemExit("daemon_group: an empty --daemon")
    name, argv = words[0], words[1:]
    if not name.replace("-", "").isalnum():
        raise SystemExit(f"daemon_group: {name!r} is not a daemon name (letters, digits and dashes)")
    # The script's module level only: its parser, and the run/stop it imports from Rucio.
    namespace = runpy.run_path(script_path(name), run_name=f"rucio_inlet.daemon_group.{name}")
    for attr in ("get_parser", "run", "stop"):
        if attr not in namespace:
            raise SystemExit(f"daemon_group: rucio-{name} has no {attr}(): not a daemon this runner knows")
    parser: argparse.ArgumentParser = namespace["get_parser"]()
    parser.prog = f"rucio-{name}"
    options = parser.parse_args(argv)
    return Daemon(name, namespace["run"], namespace["stop"], run_kwargs(namespace["run"], options))


def owner(thread_name: str, names: Sequence[str]) -> Optional[str]:
    """The daemon a thread belongs to, from its name (None: the runner's own)."""
    head = thread_name.split(SEP, 1)[0]
    return head if SEP in thread_name and head in names else None


def inherit_thread_names(names: Sequence[str]) -> None:
    """Every thread started by a daemon's thread carries the daemon's name (``reaper/Thread-3``).

    Rucio's ``run()`` starts its worker threads itself; this is how their log records are told
    apart. Patches ``threading.Thread.start`` in this process only.
    """
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        parent = owner(threading.current_thread().name, names)
        if parent is not None and owner(self.name, names) is None:
            self.name = f"{parent}{SEP}{self.name}"
        original(self)

    threading.Thread.start = start  # type: ignore[method-assign]


class OwnedBy(logging.Filter):
    """Passes the records of one daemon's threads (``daemon``), or of no daemon's (None)."""

    def __init__(self, daemon: Optional[str], names: Sequence[str]) -> None:
        super().__init__()
        self.daemon = daemon
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        return owner(record.threadName or "", self.names) == self.daemon


def setup_logs(log_dir: Path, names: Sequence[str]) -> None:
    """Root handlers, one file per daemon, before Rucio's ``setup_logging`` (whose ``basicConfig``
    then leaves them alone). Rucio's own formatter and ``[common] loglevel``."""
    from rucio.common.config import config_get
    from rucio.common.logging import rucio_log_formatter

    level = getattr(logging, str(config_get("common", "loglevel", raise_exception=False, default="DEBUG")).upper())
    root = logging.getLogger()
    root.setLevel(level)
    log_dir.mkdir(parents=True, exist_ok=True)
    own = logging.StreamHandler(sys.stderr)
    own.addFilter(OwnedBy(None, names))
    handlers: list[logging.Handler] = [own]
    for name in names:
        fh = logging.FileHandler(log_dir / f"rucio-{name}.log", encoding="utf-8")
        fh.addFilter(OwnedBy(name, names))
        handlers.append(fh)
    for h in handlers:
        h.setFormatter(rucio_log_formatter())
        h.setLevel(level)
        root.addHandler(h)


class Group:
    """The daemons' threads, and the one decision of the main thread: when to stop them all."""

    def __init__(self, daemons: Sequence[Daemon]) -> None:
        self.daemons = list(daemons)
        self.names = [d.name for d in daemons]
        self.stopping = threading.Event()
        self.ended = threading.Event()
        self.failed: list[str] = []
        self.threads: list[threading.Thread] = []

    def _run(self, daemon: Daemon) -> None:
        try:
            daemon.run(**daemon.kwargs)
            # Some run()s return while their workers go on (the reaper's join loop ends after one
            # round): the daemon is over when the last of its threads is.
            me = threading.current_thread()
            while not self.stopping.is_set() and any(
                t is not me and t.is_alive() and owner(t.name, self.names) == daemon.name for t in threading.enumerate()
            ):
                self.stopping.wait(1.0)
            if not self.stopping.is_set():
                log.critical("rucio-%s: its threads ended while nothing asked it to stop", daemon.name)
                self.failed.append(daemon.name)
        except BaseException:
            log.critical("rucio-%s: run() raised; stopping its group", daemon.name, exc_info=True)
            self.failed.append(daemon.name)
        finally:
            self.ended.set()

    def start(self) -> None:
        for d in self.daemons:
            t = threading.Thread(target=self._run, args=(d,), name=f"{d.name}{SEP}run", daemon=True)
            self.threads.append(t)
            t.start()
        log.info("running %s in pid %d", ", ".join(d.name for d in self.daemons), os.getpid())

    def stop(self, signum: Optional[int] = None, frame: Optional[FrameType] = None) -> None:
        self.stopping.set()
        self.ended.set()

    def wait(self) -> int:
        """Block until a signal or a daemon's end; stop the rest; the exit status."""
        while not self.ended.wait(1.0):
            pass
        self.stopping.set()
        for d in self.daemons:
            try:
                d.stop()
            except Exception:
                log.exception("rucio-%s: stop() raised", d.name)
        for t in self.threads:
            t.join(STOP_WAIT_S / max(1, len(self.threads)))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            log.warning("still running after stop(), left to exit with the process: %s", ", ".join(alive))
        return 1 if self.failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rucio_inlet.daemon_group", description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", required=True, type=Path, help="each daemon logs to rucio-<daemon>.log here")
    parser.add_argument(
        "--daemon",
        action="append",
        required=True,
        metavar='"NAME [OPTIONS]"',
        help="a Rucio daemon and the options of its rucio-NAME script (repeat for each)",
    )
    parser.add_argument(
        "--db-pool",
        type=int,
        default=0,
        help="database connections the group keeps open between passes ([database] pool_size for this "
        "process; more are opened while needed and closed after). 0: rucio.cfg's",
    )
    args = parser.parse_args(argv)
    if args.db_pool > 0:
        # Before any daemon's first session creates Rucio's engine, which reads it once.
        from rucio.common.config import config_set

        config_set("database", "pool_size", str(args.db_pool))
    daemons = [load(spec) for spec in args.daemon]
    names = [d.name for d in daemons]
    if len(set(names)) != len(names):
        raise SystemExit("daemon_group: a daemon is named twice: each registers one heartbeat per thread")
    setup_logs(args.log_dir, names)
    inherit_thread_names(names)
    group = Group(daemons)
    signal.signal(signal.SIGTERM, group.stop)
    signal.signal(signal.SIGINT, group.stop)
    group.start()
    return group.wait()


if __name__ == "__main__":
    sys.exit(main())
