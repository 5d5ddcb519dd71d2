"""The rehearsal's own child processes (its uploader worker, ``inlet listen``, a reco worker).

Each appends to a log of its own and is ready when a line says so *after* its latest start,
so a process killed by the chaos drill can be started again on the same log.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from inlet.errors import InletError


class ProcessError(InletError, RuntimeError):
    """A process of the rehearsal did not start; the message names its log."""


class OwnProcess:
    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, ready_text: bytes
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.ready_text = ready_text
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 120.0) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProcessError(
                    f"the rehearsal's {self.name} exited; see {self.log_path}:\n{self._tail(offset)}",
                    "fix the cause above (is the lake up? `inlet lake status`)",
                )
            if self.ready_text in self._since(offset):
                return self.proc.pid
            time.sleep(0.2)
        raise ProcessError(
            f"the rehearsal's {self.name} did not get ready in {timeout:.0f} s; see {self.log_path}",
            "check the lake (`inlet lake status`) and that log",
        )

    def _since(self, offset: int) -> bytes:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read()

    def _tail(self, offset: int) -> str:
        return self._since(offset)[-2000:].decode(errors="replace")

    def kill(self) -> int | None:
        """``kill -9`` the process and its children (Celery's pool), as a crash would."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            root = psutil.Process(self.proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(tree, timeout=10)
        self.proc.wait(10)
        return self.proc.pid

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
