"""The Rucio server: Rucio's own Flask app under gunicorn, bootstrapped on first start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import requests

from inlet.lake.errors import LakeError
from inlet.lake.rucio_cfg import (
    naming_file,
    render_alembic_ini,
    render_naming,
    render_rucio_cfg,
    shipped_mail_templates,
    write_mail_templates,
)
from inlet.lake.services.base import LakePaths, Service, rucio_bin, write_private
from inlet.lake.services.postgres import Postgres


def run_rucio_module(
    module: str, env: dict[str, str], what: str, fix: str, stdin: str | None = None, args: tuple[str, ...] = ()
) -> str:
    """Run ``python -m module`` in a child process with Rucio's environment; return its stdout.

    A child process because Rucio reads RUCIO_CONFIG once, at import, and the calling process
    may serve several lakes (tests) or none. A failure becomes a :class:`LakeError` with the
    child's own last words."""
    res = subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if res.returncode != 0:
        raise LakeError(f"{what} failed:\n" + (res.stderr or res.stdout).strip()[-2000:], fix)
    return res.stdout


def rucio_env(paths: LakePaths) -> dict[str, str]:
    """Environment of every Rucio process the lake starts (server, daemons, bootstrap)."""
    return {"RUCIO_CONFIG": str(paths.rucio_cfg), "TMPDIR": str(paths.tmp), "PYTHONUNBUFFERED": "1"}


class RucioServer(Service):
    name = "rucio"
    port_setting = "[rucio] host / INLET_RUCIO__HOST"

    @property
    def port(self) -> int:
        port = urlparse(self.settings.rucio.host).port
        if port is None:
            raise LakeError(
                f"rucio: [rucio] host {self.settings.rucio.host!r} has no port",
                "give the embedded server an explicit port, e.g. http://127.0.0.1:28080",
            )
        return port

    @property
    def endpoint(self) -> str:
        return self.settings.rucio.host

    @property
    def _marker(self) -> Path:
        return self.paths.data / ".rucio-bootstrapped"

    def write_configs(self) -> None:
        db_url = Postgres(self.settings, self.paths).url
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        (self.paths.tmp / "rucio-token").mkdir(parents=True, exist_ok=True)
        # Both hold the database password (rucio.cfg also Rucio's, the broker's and the catalogue's).
        write_private(self.paths.conf / "alembic.ini", render_alembic_ini(self.paths, db_url))
        naming_file(self.paths).write_text(render_naming(self.settings))
        if shipped_mail_templates() is None:
            write_mail_templates(self.paths.conf / "mail_templates")
        write_private(self.paths.rucio_cfg, render_rucio_cfg(self.settings, self.paths, db_url))

    def prepare(self) -> None:
        self.write_configs()
        if self._marker.exists():
            return
        run_rucio_module(
            "inlet.lake.rucio_bootstrap",
            rucio_env(self.paths),
            "rucio: bootstrapping the catalogue (schema, root account, identity)",
            "check that PostgreSQL is up (`inlet lake status`); re-run `inlet lake up` to retry, "
            "it resumes where it stopped",
        )
        self._marker.write_text("ok\n")

    def argv(self) -> list[str]:
        gunicorn = rucio_bin(self.settings, "gunicorn")
        # gunicorn >= 24 opens a control socket unless told not to; older ones (the newest that
        # still installs on Python 3.9, [lake] rucio_python) do not know the option.
        try:
            help_text = subprocess.run([gunicorn, "--help"], capture_output=True, text=True, check=False).stdout
        except OSError:  # no gunicorn there: starting it reports that, with the fix
            help_text = ""
        no_socket = ["--no-control-socket"] if "--no-control-socket" in help_text else []
        return [
            gunicorn,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.settings.lake.rucio_workers),
            # > 1: gthread workers (Rucio's own deployments run it threaded, under mod_wsgi).
            "--threads",
            str(self.settings.lake.rucio_threads),
            "--timeout",
            "120",
            *no_socket,
            "--access-logfile",
            str(self.paths.logs / "rucio-access.log"),
            "rucio.web.rest.flaskapi.v1.main:application",
        ]

    def env(self) -> dict[str, str]:
        return rucio_env(self.paths)

    def ready(self) -> bool:
        try:
            return bool(requests.get(f"{self.settings.rucio.host}/ping", timeout=2).status_code == 200)
        except requests.RequestException:
            return False
