"""The Python API: hand files of a run to the workers, optionally wait for the outcome.

Every file is checked against the naming schema before anything is queued: a refused name
stops the whole call with the schema's message and leaves every file where it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inlet.config import Settings
from inlet.uploader import app_runtime
from inlet.uploader.plan import BadInput, plan_file, run_collections
from inlet.uploader.roots import Refused, command_line_roots, grant, normalise

Progress = Callable[[dict[str, Any]], None]


@dataclass
class UploadOutcome:
    registered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)
    run_state: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.quarantined


def check_files(
    paths: Iterable[Path], run: int, stream: str, experiment: str | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Items for the workers; raises :class:`BadInput` listing every refused file (none is queued).

    Each file must be a regular file inside the DAQ roots (``[uploader] daq_roots``; empty:
    the directories of the files given, granted to the workers once every file checked out).
    """
    s = settings or app_runtime.settings()
    coll = run_collections(s, run, stream, experiment)
    paths = list(paths)
    try:
        roots, to_grant = command_line_roots(s, [normalise(p).parent for p in paths])
    except Refused as exc:
        raise BadInput(f"nothing was uploaded: {exc}") from None
    items, problems = [], []
    seen: set[str] = set()
    for given in paths:
        try:
            daq = roots.check(given)
            plan_file(daq.path, coll, s.naming)
        except (BadInput, Refused) as exc:
            problems.append(str(exc))
            continue
        if daq.path.name in seen:
            problems.append(f"{daq.path}: the name {daq.path.name} is given twice (one DID per name)")
            continue
        seen.add(daq.path.name)
        items.append({"path": str(daq.path), "size": daq.size})
    if problems:
        raise BadInput("nothing was uploaded:\n  " + "\n  ".join(problems))
    for d in to_grant:
        grant(s, d)
    return items


def workers_on(queue: str, timeout: float = 1.0) -> list[str]:
    """Names of the Celery workers that consume ``queue`` now (empty: nobody would take a batch).

    Asked with a broadcast that every running worker answers within ``timeout`` seconds, so an
    upload can say at once that no worker runs instead of waiting silently for one.
    """
    from inlet.uploader.celery_app import app

    answers = app.control.inspect(timeout=timeout).active_queues() or {}
    return sorted(name for name, queues in answers.items() if any(q.get("name") == queue for q in queues or []))


def worker_command(queue: str) -> str:
    """The command that starts a worker for ``queue``."""
    return f"celery -A inlet.uploader worker -Q {queue}"


def submit(
    items: list[dict[str, Any]],
    run: int,
    stream: str,
    experiment: str | None = None,
    *,
    batch_size: int | None = None,
    every: float | None = None,
    end_run: bool = False,
    expected_files: int | None = None,
) -> tuple[list[Any], Any]:
    """Queue ``items`` in batches; with ``every``, one batch every that many seconds (profile playback).

    With ``end_run``, the run is closed once ``expected_files`` (default: these items) are
    registered. Returns the batch results and the end-of-run result (or None).
    """
    from inlet.uploader.celery_app import end_run as end_run_task
    from inlet.uploader.celery_app import upload_batch

    settings = app_runtime.settings()
    size = batch_size or settings.uploader.batch_size
    results = []
    next_at = time.monotonic()
    for i in range(0, len(items), size):
        if every:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += every
        # submitted_at: the start of the submitted -> registered latency the workers measure.
        batch = [{**item, "submitted_at": time.time()} for item in items[i : i + size]]
        results.append(upload_batch.delay(batch, run, stream, experiment))
    end = None
    if end_run:
        expected = len(items) if expected_files is None else expected_files
        end = end_run_task.delay(run, stream, experiment, expected)
    return results, end


def upload(
    paths: Iterable[Path],
    run: int,
    stream: str = "raw",
    experiment: str | None = None,
    *,
    batch_size: int | None = None,
    every: float | None = None,
    end_run: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> UploadOutcome:
    """Upload files of one run and wait for the workers; the whole flow in one call."""
    items = check_files(paths, run, stream, experiment)
    results, end = submit(items, run, stream, experiment, batch_size=batch_size, every=every, end_run=end_run)
    return wait(results, end, timeout=timeout, progress=progress)


def wait(
    results: list[Any], end: Any = None, timeout: float | None = None, progress: Progress | None = None
) -> UploadOutcome:
    out = UploadOutcome()
    for r in results:
        res: dict[str, Any] = r.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
        out.registered += res["registered"]
        out.skipped += res["skipped"]
        out.failed.update(res["failed"])
        out.quarantined.update(res["quarantined"])
        if progress is not None:
            progress(res)
    if end is not None:
        out.run_state = end.get(timeout=timeout)
    return out
