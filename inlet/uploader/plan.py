"""From a DAQ file, a run number and a stream to the DIDs it becomes: file, run dataset, run container.

The names follow the experiment's naming rules ([naming], the same rules the Rucio server
enforces through rucio_inlet), so a name the server would refuse is refused here first,
with the server's own wording, before a byte moves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rucio_inlet.naming import NamingSettings
from rucio_inlet.schema_rules import expected

from inlet.config import Settings, StreamPolicy
from inlet.errors import InletError


class BadInput(InletError, ValueError):
    """A file the uploader refuses as given (name, run, stream); the message says how to fix it."""


@dataclass(frozen=True)
class RunCollections:
    experiment: str
    run: int
    stream: str
    scope: str
    dataset: str
    container: str | None


@dataclass(frozen=True)
class FilePlan:
    path: Path
    scope: str
    name: str
    collections: RunCollections

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"


def stream_policy(settings: Settings, stream: str) -> StreamPolicy:
    try:
        return settings.uploader.streams[stream]
    except KeyError:
        known = ", ".join(sorted(settings.uploader.streams)) or "none"
        raise BadInput(
            f"unknown stream {stream!r} (configured streams: {known}); add [uploader.streams.{stream}] "
            "to the configuration or pass one of those"
        ) from None


def _matches(patterns: list[str], tier: str, name: str) -> bool:
    return any(re.fullmatch(p.replace("{tier}", tier), name) for p in patterns)


def run_collections(settings: Settings, run: int, stream: str, experiment: str | None = None) -> RunCollections:
    naming: NamingSettings = settings.naming
    exp = experiment or naming.experiment
    if exp not in naming.experiments:
        raise BadInput(
            f"experiment {exp!r} is not in [naming.experiments] ({', '.join(sorted(naming.experiments))}); "
            "pass one of those or add its naming rules"
        )
    if run < 0 or run > 999_999:
        raise BadInput(f"run number {run} is outside 0-999999, the six digits of the run naming schema")
    policy = stream_policy(settings, stream)
    tier = policy.tier
    rules = naming.experiments[exp]
    scope = f"{exp}.{tier}"
    if tier not in rules.tiers:
        raise BadInput(
            f"stream {stream!r} writes tier {tier!r}, which experiment {exp!r} does not have "
            f"(tiers: {', '.join(sorted(rules.tiers))}); fix [uploader.streams.{stream}] tier"
        )
    dataset = f"run{run:06d}.{tier}"
    if not _matches(rules.datasets, tier, dataset):
        raise BadInput(
            f"the run dataset name {dataset!r} matches none of [naming.experiments.{exp}] datasets "
            f"{rules.datasets}; add a pattern such as 'run(?P<run>\\d{{6}})\\.{{tier}}'"
        )
    container = None
    if rules.containers:
        span = settings.uploader.container_span
        first = run // span * span
        candidate = f"runs{first:06d}-{min(first + span - 1, 999_999):06d}.{tier}"
        if _matches(rules.containers, tier, candidate):
            container = candidate
    return RunCollections(exp, run, stream, scope, dataset, container)


def plan_file(path: Path, collections: RunCollections, naming: NamingSettings) -> FilePlan:
    name = path.name
    file_run = naming.run_of(collections.scope, name)
    if file_run is None:
        raise BadInput(f"{path}: refused, the name breaks the naming schema: {expected(naming, collections.scope)}")
    if file_run != collections.run:
        raise BadInput(
            f"{path}: the name says run {file_run} but the upload is for run {collections.run}; "
            f"pass --run {file_run} or rename the file"
        )
    return FilePlan(path, collections.scope, name, collections)


#: Longest path a task may name (PATH_MAX); a longer string is not a file on this host.
_MAX_PATH = 4096
#: More files than any batch holds: a task beyond this is not one inlet sent.
MAX_TASK_ITEMS = 100_000


def check_task(items: Any, run: Any, stream: Any, experiment: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The arguments of an upload task, checked as the input they are (a task may be forged).

    Returns the well-formed items (``path`` a string, ``size`` and ``submitted_at`` numbers or
    absent) and, keyed by a short rendering, the items refused with the reason. Raises
    :class:`BadInput` if the task as a whole is malformed (run, stream, experiment, items).
    """
    if isinstance(run, bool) or not isinstance(run, int) or not 0 <= run <= 999_999:
        raise BadInput(f"task refused: run {str(run)[:40]!r} is not a run number (a whole number 0-999999)")
    if not isinstance(stream, str) or not (experiment is None or isinstance(experiment, str)):
        raise BadInput("task refused: stream and experiment must be strings")
    if not isinstance(items, list) or len(items) > MAX_TASK_ITEMS:
        raise BadInput(f"task refused: items must be a list of at most {MAX_TASK_ITEMS} files")
    good: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    for n, item in enumerate(items):
        key = f"item {n}: {str(item)[:120]}"
        if not isinstance(item, dict):
            refused[key] = "not an object with a 'path'"
            continue
        path = item.get("path")
        if not isinstance(path, str) or not path or len(path) > _MAX_PATH or "\x00" in path:
            refused[key] = f"'path' must be a file path string of at most {_MAX_PATH} characters"
            continue
        clean: dict[str, Any] = {"path": path}
        if "sidecar" in item:
            clean["sidecar"] = item["sidecar"]  # checked per file by inlet.uploader.sidecar
        for num in ("size", "submitted_at"):
            v = item.get(num)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v < 2**63:
                clean[num] = v
        good.append(clean)
    return good, refused
