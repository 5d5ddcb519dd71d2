"""From a DAQ file, a run number and a stream to the DIDs it becomes: file, run dataset, run container.

The names follow the experiment's naming rules ([naming], the same rules the Rucio server
enforces through inlet.policies), so a name the server would refuse is refused here first,
with the server's own wording, before a byte moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from inlet.config import Settings, StreamPolicy
from inlet.errors import InletError
from inlet.policies.naming import NamingSettings
from inlet.policies.schema_rules import expected


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
