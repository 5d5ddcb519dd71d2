"""The Rucio daemons the flow needs, each its own process with short sleeps.

Most are Rucio's own console scripts, unmodified. The two that every file waits for on its
way, the judge-evaluator (attach → transfer request) and hermes (→ ActiveMQ), run through
``inlet daemon`` with sub-second sleeps ([lake] flow_sleep); Rucio's scripts only take whole
seconds. The conveyor (with inlet's gfal2 transfertool) is its own service.
"""

from __future__ import annotations

from pathlib import Path

from inlet.config import Settings
from inlet.lake.errors import LakeError
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


def wake_args(settings: Settings) -> list[str]:
    """``inlet daemon`` options for [lake] flow_wake / flow_idle."""
    lake = settings.lake
    return ["--wake", "--idle", str(lake.flow_idle)] if lake.flow_wake else []


class RucioDaemon(Service):
    def __init__(self, daemon: str, settings: Settings, paths: LakePaths) -> None:
        self.daemon = daemon
        self.name = f"rucio-{daemon}"
        super().__init__(settings, paths)

    def argv(self) -> list[str]:
        lake = self.settings.lake
        if self.daemon in FLOW_DAEMONS:
            inlet = venv_bin("inlet")
            if not Path(inlet).is_file():
                raise LakeError(f"{self.name}: {inlet} not found", "run scripts/setup.sh (installs inlet into .venv)")
            extra = ["--max-pause", str(lake.evaluator_max_pause)] if self.daemon == "judge-evaluator" else []
            return [inlet, "daemon", self.daemon, "--sleep", str(lake.flow_sleep), *wake_args(self.settings), *extra]
        exe = rucio_bin(self.settings, self.name)

        if not Path(exe).is_file():
            raise LakeError(f"{self.name}: {exe} not found", "run scripts/setup.sh (installs rucio into .venv)")
        sleep = str(max(self.settings.lake.daemon_sleep, MIN_SLEEP.get(self.daemon, 1)))
        return [exe, *(a.replace("{sleep}", sleep) for a in DAEMONS[self.daemon])]

    def env(self) -> dict[str, str]:
        return rucio_env(self.paths)

    def ready(self) -> bool:
        # Daemons serve no port: alive is all there is to see from outside. The lake checks
        # again after a short settle time to catch one that dies on its first cycle.
        return self.proc.is_running()


def rucio_daemons(settings: Settings, paths: LakePaths) -> list[Service]:
    return [RucioDaemon(d, settings, paths) for d in DAEMONS]
