"""The lake's conveyor: Rucio's submitter/poller/finisher with the gfal2 transfertool, one process.

It is ``inlet daemon conveyor``, the same launcher a site without FTS runs, so rules on the
local lake end in real bytes at the destination without any manual step.
"""

from __future__ import annotations

import json
from pathlib import Path

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, venv_bin, write_private
from inlet.lake.services.daemons import wake_args
from inlet.lake.services.rucio_server import rucio_env


def render_rse_accounts(access_key: str, secret_key: str, region: str) -> str:
    """Rucio's rse-accounts.cfg: the S3 RSE's credentials, read by rucio_inlet.s3 in every process."""
    return json.dumps({"S3": {"access_key": access_key, "secret_key": secret_key, "region": region}}, indent=2)


class Conveyor(Service):
    # "rucio-" prefix: the lake's settle check for daemons (alive 2 s after start) applies.
    name = "rucio-conveyor"

    def prepare(self) -> None:
        s3 = self.settings.s3
        path = self.paths.conf / "rse-accounts.cfg"
        write_private(path, render_rse_accounts(s3.access_key, s3.secret_key, s3.region))

    def argv(self) -> list[str]:
        exe = venv_bin("inlet")
        if not Path(exe).is_file():
            raise LakeError(f"{self.name}: {exe} not found", "run scripts/setup.sh (installs inlet into .venv)")
        t = self.settings.transfers
        return [
            exe,
            "-v",
            "daemon",
            "conveyor",
            "--submitter-sleep",
            str(t.submitter_sleep),
            "--poller-sleep",
            str(t.poller_sleep),
            "--finisher-sleep",
            str(t.finisher_sleep),
            *wake_args(self.settings),
        ]

    def env(self) -> dict[str, str]:
        return rucio_env(self.paths)

    def ready(self) -> bool:
        return self.proc.is_running()
