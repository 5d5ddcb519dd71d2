"""``inlet watch DIR``: upload DAQ files as they are closed (sidecar JSON or stable size/mtime)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from inlet.errors import InletError

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

    DIRECTORY must lie inside \\[uploader] daq_roots; with none configured it becomes the root
    of this watch (and is granted to the workers). A file whose name breaks the naming schema,
    whose sidecar is bad (wrong types, run out of range, not JSON, a symlink...), that is a
    symlink leaving the DAQ roots or a special file, is quarantined with a reason file and an
    alarm; the other files go on. Nothing in the directory can stop the watcher.
    """
    from inlet.cli.upload_cmd import require_redis
    from inlet.uploader import api, app_runtime
    from inlet.uploader.events import Publisher, file_quarantined
    from inlet.uploader.pipeline import state_path
    from inlet.uploader.quarantine import quarantine_info
    from inlet.uploader.roots import Refused, command_line_roots, grant, normalise
    from inlet.uploader.watch import ClosedFileDetector

    settings = app_runtime.settings()
    require_redis(settings.redis.url)
    try:
        roots, to_grant = command_line_roots(settings, [directory])
        where = normalise(directory)
        if not (roots.contains(where) and roots.contains(Path(os.path.realpath(where)))):
            raise Refused(
                "outside-roots",
                f"{where} is outside [uploader] daq_roots ({', '.join(map(str, roots.roots))}); "
                "watch a DAQ directory or add it to daq_roots",
            )
        for d in to_grant:
            grant(settings, d)
    except Refused as exc:
        raise InletError(str(exc)) from None
    # The Celery app (celery, kombu, the broker URL) now rather than when the first file closes:
    # that file would wait for the imports.
    from inlet.uploader import celery_app  # noqa: F401

    qdir = state_path(settings, settings.uploader.quarantine_dir)
    publisher = Publisher(settings.broker)

    def refuse(path: Path, reason: str, kind: str, companions: tuple[Path, ...] = ()) -> None:
        info = quarantine_info(path, qdir, reason, kind, roots, companions)
        try:
            publisher.publish([file_quarantined(info, stream=stream)])
        except Exception as exc:  # the reason file and the ALARM log line stay
            console.print(f"file-quarantined event not published ({escape(str(exc))})")

    det = ClosedFileDetector(
        directory,
        settings.uploader.stable_seconds if stable is None else stable,
        settings.uploader.sidecar_suffix,
        roots=roots,
        on_refused=refuse,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    #: Closed files not yet queued (the broker was away): queued on a later pass, never dropped.
    backlog: dict[int, list[dict[str, Any]]] = {}
    while not stop.is_set():
        try:
            for c in det.scan():
                if c.run is None:
                    try:
                        refuse(c.path, f"{c.path}: no run number in the name or the sidecar", "bad-name")
                    except Exception as exc:  # the next candidates of this scan still go in
                        console.print(f"could not quarantine {escape(str(c.path))} ({escape(str(exc))})")
                    continue
                backlog.setdefault(c.run, []).append({"path": str(c.path), "size": c.size, "sidecar": c.sidecar})
        except Exception as exc:
            console.print(f"scanning {escape(str(directory))} failed ({escape(str(exc))}); trying again")
        for run in sorted(backlog):
            items = backlog[run]
            try:
                api.submit(items, run, stream, experiment)
            except Exception as exc:
                console.print(f"could not queue {len(items)} file(s) of run {run} ({escape(str(exc))}); trying again")
                break
            del backlog[run]
            console.print(f"queued {len(items)} closed file(s) of run {run}")
        if once:
            if backlog:
                raise typer.Exit(code=1)
            return
        deadline = time.monotonic() + interval
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
