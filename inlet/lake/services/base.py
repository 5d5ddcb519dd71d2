"""What every lake service provides, and the paths they share.

A service is a real process. The lake drives each through the same steps:
``check()`` (binaries, ports) → ``prepare()`` (one-time, idempotent initialisation) →
``start`` → ``ready()`` (a real protocol answer, not just an open port) → ``after_start()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from inlet.config import Settings
from inlet.lake.errors import LakeError
from inlet.lake.ports import ensure_free
from inlet.lake.process import ManagedProcess


@dataclass(frozen=True)
class LakePaths:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def rucio_cfg(self) -> Path:
        return self.conf / "rucio.cfg"

    def rse_dir(self, rse: str) -> Path:
        return self.data / "rses" / rse


def venv_bin(name: str) -> str:
    """An executable installed next to the running interpreter (rucio-*, gunicorn)."""
    return str(Path(sys.executable).parent / name)


def rucio_bin(settings: Settings, name: str) -> str:
    """An executable of the venv that runs Rucio (``[lake] rucio_python``, default: inlet's own)."""
    python = settings.lake.rucio_python
    if not python:
        return venv_bin(name)
    if not Path(python).is_file():
        raise LakeError(
            f"[lake] rucio_python {python!r} does not exist",
            "point it at a venv's bin/python with rucio and rucio-inlet (scripts/setup.sh builds .venv-py39), "
            "or leave it empty to run Rucio on inlet's interpreter",
        )
    # The venv's bin directory as given: resolving the symlink would leave the venv.
    return str(Path(python).absolute().parent / name)


def require_executable(path_or_name: str, service: str, fix: str) -> str:
    found = shutil.which(path_or_name)
    if found is None:
        raise LakeError(f"{service}: executable {path_or_name!r} not found", fix)
    return found


class Service(ABC):
    """A lake service: one managed process plus how to initialise and probe it."""

    name: str
    #: Config setting that moves this service's port, named in port-clash errors.
    port_setting: str = ""

    def __init__(self, settings: Settings, paths: LakePaths) -> None:
        self.settings = settings
        self.paths = paths
        self.proc = ManagedProcess(self.name, paths.run, paths.logs)

    @property
    def port(self) -> int | None:
        return None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}" if self.port else "-"

    def check(self) -> None:
        """Fail early, with the fix, on a missing binary or a taken port."""
        self.argv()
        if self.port is not None:
            ensure_free(self.port, self.name, self.port_setting)

    def prepare(self) -> None:  # noqa: B027 - most services need no initialisation
        """One-time initialisation. Must be idempotent and must finish a half-done earlier run."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line; raises :class:`LakeError` if its executable is missing."""

    def env(self) -> dict[str, str]:
        return {}

    def members(self) -> list[str]:
        """Names of the daemons that run as threads inside this service's process, each with its
        own log ``<name>.log`` and its own row in ``inlet lake status``."""
        return []

    def user(self) -> str | None:
        return None

    @abstractmethod
    def ready(self) -> bool:
        """True once the service answers its own protocol."""

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Work that needs the running service (create a database, a bucket...)."""

    def start(self) -> int:
        return self.proc.start(self.argv(), env=self.env(), cwd=self.paths.root, user=self.user())


def write_private(path: Path, text: str, owner: str | None = None) -> None:
    """Write ``path`` atomically, readable by its owner only (0600) from the first byte.

    For files holding secrets: a temporary file created 0600 in the same directory, then
    renamed over ``path``, so no reader ever sees a partial file or a moment of wider mode.
    ``owner`` hands the file to a service user (postgres, mysql) before it gets its name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        if owner is not None:
            shutil.chown(tmp, user=owner, group=owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
