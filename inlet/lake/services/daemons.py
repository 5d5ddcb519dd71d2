"""The Rucio daemons the flow needs, each its own ``rucio-*`` process with short sleeps.

They are Rucio's own console scripts, unmodified: what runs here is what runs at a site.
The conveyor (with inlet's gfal2 transfertool) is added by the plugins issue.
"""

from __future__ import annotations

from pathlib import Path

from inlet.config import Settings
from inlet.lake.errors import LakeError
from inlet.lake.services.base import LakePaths, Service, venv_bin
from inlet.lake.services.rucio_server import rucio_env

#: daemon -> extra arguments. ``{sleep}`` is [lake] daemon_sleep.
DAEMONS: dict[str, list[str]] = {
    "judge-evaluator": ["--sleep-time", "{sleep}"],
    "judge-repairer": ["--sleep-time", "{sleep}"],
    "hermes": ["--sleep-time", "{sleep}", "--bulk", "1000"],
    "reaper": ["--sleep-time", "{sleep}", "--chunk-size", "100"],
    "undertaker": ["--sleep-time", "{sleep}"],
    "abacus-account": ["--sleep-time", "{sleep}"],
    "abacus-rse": ["--sleep-time", "{sleep}"],
}


class RucioDaemon(Service):
    def __init__(self, daemon: str, settings: Settings, paths: LakePaths) -> None:
        self.daemon = daemon
        self.name = f"rucio-{daemon}"
        super().__init__(settings, paths)

    def argv(self) -> list[str]:
        exe = venv_bin(self.name)

        if not Path(exe).is_file():
            raise LakeError(f"{self.name}: {exe} not found", "run scripts/setup.sh (installs rucio into .venv)")
        sleep = str(self.settings.lake.daemon_sleep)
        return [exe, *(a.replace("{sleep}", sleep) for a in DAEMONS[self.daemon])]

    def env(self) -> dict[str, str]:
        return rucio_env(self.paths)

    def ready(self) -> bool:
        # Daemons serve no port: alive is all there is to see from outside. The lake checks
        # again after a short settle time to catch one that dies on its first cycle.
        return self.proc.is_running()


def rucio_daemons(settings: Settings, paths: LakePaths) -> list[Service]:
    return [RucioDaemon(d, settings, paths) for d in DAEMONS]
