"""CPU seconds and resident memory of the lake's services and of any other processes, per group.

The figure of merit of a run is the CPU the whole system spent per delivered file. A service
is a process tree (a gunicorn master and its workers, PostgreSQL's postmaster and one backend
per connection, a Java broker), so a service's CPU is the sum over the tree. Backends and
workers come and go during a run: the CPU of a child that has exited and been waited for is in
its parent's ``children_user``/``children_system``, so summing those too over every live
process keeps a short-lived process's cost in the figure instead of losing it when it exits.

Two samples taken at the start and the end of a steady segment give the CPU spent in it
(:func:`cpu_spent`); the difference is all that means something (the absolute values include
start-up).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import psutil

from inlet.config import Settings
from inlet.lake.lake import Lake


@dataclass(frozen=True)
class Usage:
    """One process tree at one moment."""

    #: user + system CPU seconds, including exited children that were waited for.
    cpu: float
    #: resident set size summed over the live processes, in bytes (shared pages counted per process).
    rss: int
    #: live processes in the tree.
    processes: int
    #: proportional set size summed over the live processes, in bytes: each shared page divided
    #: among the processes that map it (PostgreSQL's backends share its buffers; RSS counts them
    #: once per backend). 0 where the kernel gives none.
    pss: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu + other.cpu, self.rss + other.rss, self.processes + other.processes, self.pss + other.pss)


NOTHING = Usage(0.0, 0, 0)


def pss_of(pid: int) -> int:
    """The process's PSS in bytes from ``/proc/PID/smaps_rollup`` (one summary line, cheap to read);
    0 if it is gone or the file is not readable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def tree_usage(root: psutil.Process, exclude: Collection[int] = ()) -> Usage:
    """CPU and RSS of ``root`` and all its descendants but ``exclude`` (and theirs); a process
    that vanishes meanwhile counts 0."""
    try:
        procs = _tree(root, exclude)
    except psutil.Error:
        return NOTHING
    cpu, rss, n, pss = 0.0, 0, 0, 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            with p.oneshot():
                t = p.cpu_times()
                mem = p.memory_info().rss
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += int(mem)
            pss += pss_of(p.pid)
            n += 1
    return Usage(cpu, rss, n, pss)


def _tree(root: psutil.Process, exclude: Collection[int]) -> list[psutil.Process]:
    """``root`` and its descendants, without the subtrees of ``exclude``."""
    if root.pid in exclude:
        return []
    out = [root]
    for child in root.children():
        with contextlib.suppress(psutil.Error):
            out += _tree(child, exclude)
    return out


def pid_usage(pids: Iterable[int], seen: set[int] | None = None) -> Usage:
    """The trees under ``pids``, each process counted once even if one pid is a descendant of another.

    ``seen`` (updated) holds pids already counted elsewhere, e.g. by another group: a driver
    process that started the uploader worker must not count the worker's CPU again.
    """
    seen = set() if seen is None else seen
    total = NOTHING
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            tree = _tree(psutil.Process(pid), seen)
            total = total + tree_usage(psutil.Process(pid), seen)
            seen.update(p.pid for p in tree)
    return total


def lake_pids(settings: Settings) -> dict[str, int]:
    """Service name -> pid of every running lake service, from the lake's own pid files.

    Only processes whose pid file still matches (pid and start time): a pid the kernel reused
    for something else is not the lake's.
    """
    out: dict[str, int] = {}
    for svc in Lake(settings).managed():
        proc = svc.proc.process()
        if proc is not None:
            out[svc.name] = proc.pid
    return out


#: Lake service name -> the group a report shows it in. Services not named here are "other daemons".
SERVICE_GROUPS: dict[str, str] = {
    "rucio": "rucio server",
    "rucio-judge-evaluator": "judge-evaluator",
    "rucio-conveyor": "conveyor",
    "rucio-hermes": "hermes",
    "postgres": "postgresql",
    "activemq": "activemq",
    "redis": "redis",
    "s3": "s3",
    "mariadb": "mariadb",
}
OTHER_DAEMONS = "other daemons"


def group_of(service: str) -> str:
    return SERVICE_GROUPS.get(service, OTHER_DAEMONS)


@dataclass(frozen=True)
class Sample:
    """Usage per group at one wall-clock moment."""

    at: float
    groups: dict[str, Usage] = field(default_factory=dict)

    @property
    def total(self) -> Usage:
        total = NOTHING
        for u in self.groups.values():
            total = total + u
        return total


def sample(settings: Settings | None, extra: Mapping[str, Iterable[int]] | None = None) -> Sample:
    """Usage of every lake service (grouped by :data:`SERVICE_GROUPS`) plus ``extra`` groups of pids.

    ``settings`` None samples no lake (only ``extra``): for a lake someone else runs.
    """
    groups: dict[str, Usage] = {}
    seen: set[int] = set()
    if settings is not None:
        for name, pid in lake_pids(settings).items():
            g = group_of(name)
            groups[g] = groups.get(g, NOTHING) + pid_usage([pid], seen)
    # In order, each process in the first group that reaches it (a lake started by the driver
    # process is its child, but counts as the lake).
    for g, pids in (extra or {}).items():
        groups[g] = groups.get(g, NOTHING) + pid_usage(pids, seen)
    return Sample(time.time(), groups)


def cpu_spent(start: Sample, end: Sample) -> dict[str, float]:
    """CPU seconds each group spent between two samples (never negative: a group whose
    processes restarted in between loses its earlier total, which would read as negative)."""
    names = list(dict.fromkeys([*start.groups, *end.groups]))
    return {g: max(0.0, end.groups.get(g, NOTHING).cpu - start.groups.get(g, NOTHING).cpu) for g in names}


def self_usage() -> Usage:
    """This process's own tree (a test, a benchmark driving the flow in-process)."""
    return tree_usage(psutil.Process(os.getpid()))
