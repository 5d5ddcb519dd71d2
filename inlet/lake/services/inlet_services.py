"""inlet's own services run by the lake: one uploader worker and, on request, one listener.

With them, the README's tour works as written: ``inlet upload`` finds a worker on its queue,
and Rucio's events reach the run catalogue. Each runs with the lake's Rucio configuration and
state directory. The worker is managed by default: it consumes only ``[uploader] queue``, so
test sessions and sites with workers of their own on other queues are not disturbed. The
listener is not: listeners compete for one queue, and a second one would take events from a
listener run by hand (add ``listener`` to ``[lake] manage`` for it).
"""

from __future__ import annotations

import time
from pathlib import Path

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, venv_bin
from inlet.lake.services.rucio_server import rucio_env

#: Written into the service's log before each start: readiness is read after the last one.
START_MARK = "---- inlet lake: starting"


class _LoggedReady(Service):
    """A service whose own log says when it is ready (it serves no port)."""

    #: The log line (bytes) that says the service is ready.
    ready_text: bytes = b""

    def _exe(self, name: str) -> str:
        exe = venv_bin(name)
        if not Path(exe).is_file():
            raise LakeError(f"{self.name}: {exe} not found", "run scripts/setup.sh (installs inlet into .venv)")
        return exe

    def env(self) -> dict[str, str]:
        return {**rucio_env(self.paths), "INLET_LAKE__STATE_DIR": str(self.paths.root)}

    def start(self) -> int:
        self.proc.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.proc.log_path.open("a") as fh:
            fh.write(f"{START_MARK} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return super().start()

    def ready(self) -> bool:
        if not self.proc.is_running():
            return False
        try:
            with self.proc.log_path.open("rb") as fh:
                text = fh.read()
        except FileNotFoundError:
            return False
        return self.ready_text in text[text.rfind(START_MARK.encode()) :]


class UploaderWorker(_LoggedReady):
    name = "uploader"
    ready_text = b" ready."

    @property
    def endpoint(self) -> str:
        return f"queue {self.settings.uploader.queue}"

    def argv(self) -> list[str]:
        return [
            self._exe("celery"),
            "-A",
            "inlet.uploader",
            "worker",
            "-Q",
            self.settings.uploader.queue,
            "-c",
            "1",
            "-n",
            "lake-uploader@%h",
            "--loglevel",
            "INFO",
            # No gossip nor mingle: a lone worker has no one to sync with, and both cost CPU at idle.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]


class ListenerService(_LoggedReady):
    name = "listener"
    ready_text = b"starting on"

    @property
    def endpoint(self) -> str:
        return self.settings.listener.rucio_queue

    def argv(self) -> list[str]:
        return [self._exe("inlet"), "-v", "listen"]
