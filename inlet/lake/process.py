"""A service process the lake started: its pid file, its log, and how to stop it safely.

The pid file stores the process's start time next to its pid. A pid alone is not enough:
after a crash or a reboot the kernel may hand that pid to an unrelated process, and
``inlet lake down`` must never signal a process it did not start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

#: Variables a Rucio *client* process sets for itself (inlet.uploader.app_runtime): a service the
#: lake starts from such a process (a restart during ``inlet rehearse --chaos``) must not inherit
#: them. A Rucio server in client mode asks itself over REST for every RSE it reads, and its
#: workers, all waiting on one another, hang until gunicorn's timeout.
CLIENT_ONLY_ENV = ("RUCIO_CLIENT_MODE",)


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    argv: list[str]


class ManagedProcess:
    """One long-running process, tracked through ``<run_dir>/<name>.pid``."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pid_path = run_dir / f"{name}.pid"
        self.log_path = log_dir / f"{name}.log"

    def record(self) -> PidRecord | None:
        try:
            data = json.loads(self.pid_path.read_text())
            return PidRecord(int(data["pid"]), float(data["create_time"]), list(data["argv"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("%s: unreadable pid file %s, treating it as stale", self.name, self.pid_path)
            return PidRecord(-1, 0.0, [])

    def process(self) -> psutil.Process | None:
        """The live process this pid file describes, or None (not started, exited, or pid reused)."""
        rec = self.record()
        if rec is None or rec.pid <= 0:
            return None
        try:
            proc = psutil.Process(rec.pid)
            if abs(proc.create_time() - rec.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def is_running(self) -> bool:
        return self.process() is not None

    def is_stale(self) -> bool:
        """A pid file whose process is gone: left behind by a crash or a killed lake."""
        return self.pid_path.exists() and self.process() is None

    def clear_stale(self) -> bool:
        if self.is_stale():
            log.info("%s: removing stale pid file %s", self.name, self.pid_path)
            self.pid_path.unlink(missing_ok=True)
            return True
        return False

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if k not in CLIENT_ONLY_ENV}
        full_env.update(env or {})
        group = None
        if user is not None:
            # Drop to the user's own group too, else files are created group-root.
            group = pwd.getpwnam(user).pw_gid
        with self.log_path.open("ab") as out:
            # A new session: a Ctrl-C in the shell that ran `inlet lake up` must not kill the lake.
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=[] if user is not None else None,
            )
        rec = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "argv": list(argv)}
        tmp = self.pid_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.pid_path)
        return proc.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; children of the process go with it.

        Returns True if a running process was stopped.
        """
        proc = self.process()
        if proc is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        try:
            children = proc.children(recursive=True)
        except psutil.Error:
            children = []
        proc.terminate()
        _, alive = psutil.wait_procs([proc], timeout=timeout)
        for p in alive:
            log.warning("%s: pid %d ignored SIGTERM for %.0f s, killing it", self.name, p.pid, timeout)
            p.kill()
        # Workers that outlived their master (gunicorn, daemons' threads are in-process) are ours too.
        _, alive = psutil.wait_procs(children, timeout=5)
        for p in alive:
            p.kill()
        self.pid_path.unlink(missing_ok=True)
        return True

    def kill(self) -> int | None:
        """SIGKILL the process and its children at once (a crash, for fault drills); the pid file stays.

        Returns the pid killed, or None if nothing was running.
        """
        proc = self.process()
        if proc is None:
            return None
        try:
            children = proc.children(recursive=True)
        except psutil.Error:
            children = []
        for p in [proc, *children]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs([proc, *children], timeout=10)
        return proc.pid

    def _tree_sum(self, measure: Callable[[psutil.Process], int]) -> int:
        proc = self.process()
        if proc is None:
            return 0
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += measure(p)
        return total

    def rss(self) -> int:
        """Resident memory of the process and all its children, in bytes."""
        return self._tree_sum(lambda p: int(p.memory_info().rss))

    def pss(self) -> int:
        """Proportional set size of the process tree: shared pages (libraries, a forked gunicorn
        master's heap) are counted once across processes instead of once per process."""
        return self._tree_sum(lambda p: int(p.memory_full_info().pss))

    def log_tail(self, lines: int = 15) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
