"""``inlet watch DIR``: upload DAQ files as they are closed (sidecar JSON or stable size/mtime)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)


def watch(
    directory: Annotated[Path, typer.Argument(help="The DAQ directory.", exists=True, file_okay=False)],
    stream: Annotated[str, typer.Option("--stream", help="Stream policy from \\[uploader.streams].")] = "raw",
    experiment: Annotated[str | None, typer.Option("--experiment", help="Default: \\[naming] experiment.")] = None,
    stable: Annotated[
        float | None,
        typer.Option("--stable", help="Seconds of unchanged size/mtime (default \\[uploader] stable_seconds)."),
    ] = None,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            help="Seconds between directory scans (one stat of the directory when nothing changed, so keep it short).",
        ),
    ] = 0.2,
    once: Annotated[bool, typer.Option("--once", help="One scan, queue what is closed, exit.")] = False,
) -> None:
    """Queue every closed file of DIRECTORY for upload, one batch per run per scan.

    A file whose name breaks the naming schema, or that cannot be read, is moved to the
    quarantine directory by the worker, with a reason file beside it.
    """
    from inlet.cli.upload_cmd import require_redis
    from inlet.uploader import api, app_runtime
    from inlet.uploader.events import Publisher, file_quarantined
    from inlet.uploader.pipeline import state_path
    from inlet.uploader.quarantine import quarantine_info
    from inlet.uploader.watch import ClosedFileDetector

    s = app_runtime.settings()
    require_redis(s.redis.url)
    # The Celery app (celery, kombu, the broker URL) now rather than when the first file closes:
    # that file would wait for the imports.
    from inlet.uploader import celery_app  # noqa: F401

    det = ClosedFileDetector(
        directory, s.uploader.stable_seconds if stable is None else stable, s.uploader.sidecar_suffix
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    qdir = state_path(s, s.uploader.quarantine_dir)
    publisher = Publisher(s.broker)
    while not stop.is_set():
        by_run: dict[int, list[dict[str, Any]]] = {}
        for c in det.scan():
            if c.run is None:
                info = quarantine_info(c.path, qdir, f"{c.path}: no run number in the name or the sidecar", "bad-name")
                try:
                    publisher.publish([file_quarantined(info, stream=stream)])
                except Exception as exc:  # the reason file and the ALARM log line stay
                    console.print(f"file-quarantined event not published ({exc})")
                continue
            by_run.setdefault(c.run, []).append({"path": str(c.path), "size": c.path.stat().st_size,
                                                 "sidecar": c.sidecar})  # fmt: skip
        for run, items in sorted(by_run.items()):
            api.submit(items, run, stream, experiment)
            console.print(f"queued {len(items)} closed file(s) of run {run}")
        if once:
            return
        deadline = time.monotonic() + interval
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
