"""The Rucio daemons of the lake: the two the flow waits for, and the slow ones in one process.

The two that every file waits for on its way, the judge-evaluator (attach → transfer request)
and hermes (→ ActiveMQ), are each their own process, run through ``inlet daemon`` with
sub-second sleeps or woken by their work ([lake] flow_sleep, flow_wake); Rucio's scripts only
take whole seconds. The conveyor (with inlet's gfal2 transfertool) is its own service.

The others (repairer, cleaner, injector, reaper, undertaker, the two abacus) have nothing to
do most of the time and cost 115-160 MB resident each as processes of their own. They run as
threads of one process, ``rucio-daemons`` (:mod:`rucio_inlet.daemon_group`): each through
Rucio's own ``run()`` with its script's options (:data:`DAEMONS`), each with its own heartbeats
and its own log, and each still a row of ``inlet lake status`` (a *member* of the group's
service), degraded on its own failing passes. A deployment runs them as separate containers
as before (docker/): one process per daemon is what scales across hosts.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from inlet.config import Settings
from inlet.lake.errors import LakeError
from inlet.lake.process import ManagedProcess
from inlet.lake.services.base import LakePaths, Service, rucio_bin, venv_bin
from inlet.lake.services.rucio_server import rucio_env

#: daemon -> extra arguments. ``{sleep}`` is [lake] daemon_sleep.
DAEMONS: dict[str, list[str]] = {
    "judge-evaluator": [],
    "judge-repairer": ["--sleep-time", "{sleep}"],
    # Deletes expired rules (their replicas then go to the reaper) ...
    "judge-cleaner": ["--sleep-time", "{sleep}"],
    # ... and injects delayed and approved rules (a rule leaves WAITING_APPROVAL for INJECT).
    "judge-injector": ["--sleep-time", "{sleep}"],
    "hermes": [],
    "reaper": ["--sleep-time", "{sleep}", "--chunk-size", "100"],
    "undertaker": ["--sleep-time", "{sleep}"],
    "abacus-account": ["--sleep-time", "{sleep}"],
    "abacus-rse": ["--sleep-time", "{sleep}"],
}


#: Rucio's heartbeats expire after 10 x (sleep - 1) s: with a 1 s sleep that is None, and the
#: reaper's worker-slot query fails on every pass (TypeError in list_payload_counts), so it
#: never deleted anything. These daemons get at least this sleep.
MIN_SLEEP: dict[str, int] = {"reaper": 2}

#: Run by ``inlet daemon`` with float sleeps: every file waits for these two.
FLOW_DAEMONS = ("judge-evaluator", "hermes")

#: Threads of the one ``rucio-daemons`` process.
GROUPED_DAEMONS = tuple(d for d in DAEMONS if d not in FLOW_DAEMONS)

#: Database connections the group keeps between passes (rucio.cfg says 10 per process): its
#: daemons' short passes seldom overlap, and every idle connection is a PostgreSQL backend of
#: about 20 MB. A pass that finds both in use opens one more and closes it after.
GROUP_DB_POOL = 2


def daemon_args(daemon: str, settings: Settings) -> list[str]:
    """The options of Rucio's ``rucio-<daemon>`` script the lake runs it with."""
    sleep = str(max(settings.lake.daemon_sleep, MIN_SLEEP.get(daemon, 1)))
    return [a.replace("{sleep}", sleep) for a in DAEMONS[daemon]]


def wake_args(settings: Settings) -> list[str]:
    """``inlet daemon`` options for [lake] flow_wake / flow_idle."""
    lake = settings.lake
    return ["--wake", "--idle", str(lake.flow_idle)] if lake.flow_wake else []


class RucioDaemon(Service):
    """A flow daemon (:data:`FLOW_DAEMONS`): its own process, ``inlet daemon <name>``."""

    def __init__(self, daemon: str, settings: Settings, paths: LakePaths) -> None:
        if daemon not in FLOW_DAEMONS:
            raise ValueError(f"{daemon} runs in the rucio-daemons group, not as a process of its own")
        self.daemon = daemon
        self.name = f"rucio-{daemon}"
        super().__init__(settings, paths)

    def argv(self) -> list[str]:
        lake = self.settings.lake
        inlet = venv_bin("inlet")
        if not Path(inlet).is_file():
            raise LakeError(f"{self.name}: {inlet} not found", "run scripts/setup.sh (installs inlet into .venv)")
        extra = ["--max-pause", str(lake.evaluator_max_pause)] if self.daemon == "judge-evaluator" else []
        return [inlet, "daemon", self.daemon, "--sleep", str(lake.flow_sleep), *wake_args(self.settings), *extra]

    def env(self) -> dict[str, str]:
        return rucio_env(self.paths)

    def ready(self) -> bool:
        # Daemons serve no port: alive is all there is to see from outside. The lake checks
        # again after a short settle time to catch one that dies on its first cycle.
        return self.proc.is_running()


class DaemonGroup(Service):
    """The slow daemons (:data:`GROUPED_DAEMONS`) as threads of one process on Rucio's interpreter."""

    name = "rucio-daemons"

    def __init__(self, settings: Settings, paths: LakePaths, daemons: tuple[str, ...] = GROUPED_DAEMONS) -> None:
        self.daemons = daemons
        super().__init__(settings, paths)
        self.group_proc = _GroupProcess(self.name, paths.run, paths.logs, self.members())
        self.proc = self.group_proc

    def prepare(self) -> None:
        # A lake started by an older inlet ran these as processes of their own.
        self.group_proc.stop_separate()

    def argv(self) -> list[str]:
        python = rucio_bin(self.settings, "python")
        if not Path(python).is_file():
            raise LakeError(f"{self.name}: {python} not found", "run scripts/setup.sh (installs rucio into .venv)")
        argv = [python, "-m", "rucio_inlet.daemon_group", "--log-dir", str(self.paths.logs)]
        argv += ["--db-pool", str(GROUP_DB_POOL)]
        for d in self.daemons:
            argv += ["--daemon", shlex.join([d, *daemon_args(d, self.settings)])]
        return argv

    def members(self) -> list[str]:
        return [f"rucio-{d}" for d in self.daemons]

    def env(self) -> dict[str, str]:
        return rucio_env(self.paths)

    def ready(self) -> bool:
        return self.proc.is_running()


class _GroupProcess(ManagedProcess):
    """The group's process; stopping it also stops the daemons an older inlet ran one per process
    (their pid files ``rucio-<daemon>.pid``), which the lake would otherwise no longer know."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path, members: list[str]) -> None:
        super().__init__(name, run_dir, log_dir)
        self.separate = [ManagedProcess(m, run_dir, log_dir) for m in members]

    def stop_separate(self) -> bool:
        stopped = False
        for p in self.separate:
            stopped = p.stop() or stopped
        return stopped

    def stop(self, timeout: float = 20.0) -> bool:
        return self.stop_separate() | super().stop(timeout)


def rucio_daemons(settings: Settings, paths: LakePaths) -> list[Service]:
    return [*(RucioDaemon(d, settings, paths) for d in FLOW_DAEMONS), DaemonGroup(settings, paths)]
