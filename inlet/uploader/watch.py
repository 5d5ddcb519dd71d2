"""Which DAQ files are closed: a sidecar JSON says so, or size and mtime stayed still long enough.

The DAQ may write ``<file><suffix>`` (``run012345.mid.gz.json``) when it closes a file, with
optional ``run``, ``adler32``, ``md5``, ``size``: then the file is taken at once and the
checksums are verified against it. Without a sidecar a file counts as closed once its size and
mtime have not changed for ``stable_seconds``. Files are offered once per (size, mtime): a
refused file is not resubmitted until it changes.

Scanning often keeps the close -> queued delay short, so a scan that cannot find anything new
costs one ``stat`` of the directory, not one per file: a DAQ that closes a file by writing its
sidecar adds a directory entry, which moves the directory's mtime. The full scan runs whenever
that mtime moved, while any file is still waiting (for stability or a complete sidecar), and
every ``full_scan_every`` seconds regardless (a file rewritten in place moves no directory mtime).

Everything in the directory is input. A sidecar is parsed by :mod:`inlet.uploader.sidecar`; a
bad one (wrong types, run out of range, not JSON, a symlink...) refuses its file through
``on_refused`` (``inlet watch`` quarantines it with the reason and an alarm) once it has
stayed unchanged for ``stable_seconds`` (the DAQ may still be writing it), and the other files
of the scan go on. A symlink leaving the DAQ roots and a special file (FIFO, socket, device)
are refused the same way; subdirectories are not scanned and never moved. A scan never raises
because of one entry.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inlet.uploader.roots import DaqRoots, Refused
from inlet.uploader.sidecar import BadSidecar, read_sidecar

log = logging.getLogger(__name__)

_RUN = re.compile(r"run0*(\d+)")
_RUN_MAX_DIGITS = 6

#: A directory mtime this close to the listing that saw it is not trusted: an entry added in
#: the same coarse file-system clock tick would leave the mtime unchanged.
_MTIME_TICK_S = 0.1

#: (path, reason, kind, companions): a file the detector refuses; companions (its sidecar) go with it.
OnRefused = Callable[[Path, str, str, tuple[Path, ...]], None]


def _log_refused(path: Path, reason: str, kind: str, companions: tuple[Path, ...]) -> None:
    log.warning("refused %s (%s): %s", path, kind, reason)


@dataclass
class Candidate:
    path: Path
    run: int | None
    sidecar: dict[str, Any]
    size: int = 0


@dataclass
class ClosedFileDetector:
    directory: Path
    stable_seconds: float
    sidecar_suffix: str = ".json"
    full_scan_every: float = 10.0
    #: Where files may be read from; None: the directory itself.
    roots: DaqRoots | None = None
    on_refused: OnRefused = _log_refused
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)
    _offered: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: A bad sidecar's (size, mtime) and when it was first seen so: refused once it stays so.
    _bad_side: dict[Path, tuple[tuple[int, int], float]] = field(default_factory=dict)
    #: Directory mtime (ns) a full scan saw and may be trusted, and the wall time of that scan.
    _dir_mtime: int | None = None
    _full_at: float = 0.0

    def __post_init__(self) -> None:
        if self.roots is None:
            self.roots = DaqRoots([self.directory])

    def _nothing_new(self, wall: float) -> bool:
        if self._dir_mtime is None or wall - self._full_at >= self.full_scan_every:
            return False
        try:
            return self.directory.stat().st_mtime_ns == self._dir_mtime
        except OSError:
            return False

    def _refuse(
        self, path: Path, key: tuple[int, int], reason: str, kind: str, companions: tuple[Path, ...] = ()
    ) -> None:
        self._offered[path] = key
        self._seen.pop(path, None)
        self._bad_side.pop(path, None)
        try:
            self.on_refused(path, reason, kind, companions)
        except Exception as exc:
            log.error("refusing %s failed (%s); it is looked at again once it changes", path, exc)
            log.debug("refusal of %s", path, exc_info=True)

    def scan(self, now: float | None = None) -> list[Candidate]:
        wall = time.time()
        now = wall if now is None else now
        if self._nothing_new(wall):
            return []
        dir_mtime = self.directory.stat().st_mtime_ns
        waiting = False
        out = []
        for path in sorted(self.directory.iterdir()):
            try:
                got = self._consider(path, now)
            except Exception as exc:
                # One entry never stops the scan (nor the watcher): it is looked at again next time.
                log.error("skipping %s in this scan (%s: %s)", path, type(exc).__name__, exc)
                log.debug("scan of %s", path, exc_info=True)
                continue
            if got is True:
                waiting = True
            elif isinstance(got, Candidate):
                out.append(got)
        trusted = not waiting and wall - dir_mtime / 1e9 > _MTIME_TICK_S
        self._dir_mtime = dir_mtime if trusted else None
        self._full_at = wall
        return out

    def _consider(self, path: Path, now: float) -> Candidate | bool | None:
        """A closed file, True if something is still waiting, None if there is nothing to do."""
        assert self.roots is not None
        if path.name.startswith(".") or path.name.endswith(self.sidecar_suffix):
            return None
        try:
            lst = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISDIR(lst.st_mode):
            return None
        key = (lst.st_size, lst.st_mtime_ns)
        if self._offered.get(path) == key:
            return None
        try:
            daq = self.roots.check(path)
        except Refused as exc:
            if exc.kind in ("missing", "unreadable"):
                return None  # gone meanwhile, or a dangling link that may yet be completed
            self._refuse(path, key, str(exc), exc.kind)
            return None
        sidecar_path = path.with_name(path.name + self.sidecar_suffix)
        try:
            side = read_sidecar(sidecar_path)
        except BadSidecar as exc:
            try:
                sst = os.lstat(sidecar_path)
                skey = (sst.st_size, sst.st_mtime_ns)
            except OSError:
                return True
            prev = self._bad_side.get(path)
            if prev is None or prev[0] != skey:
                self._bad_side[path] = (skey, now)
                if self.stable_seconds > 0:
                    return True
            elif now - prev[1] < self.stable_seconds:
                return True
            self._refuse(path, key, f"{path}: bad sidecar {sidecar_path.name}: {exc}", "bad-sidecar", (sidecar_path,))
            return None
        self._bad_side.pop(path, None)
        if side is None:
            prev_seen = self._seen.get(path)
            if prev_seen is None or prev_seen[:2] != key:
                self._seen[path] = (*key, now)
                if self.stable_seconds > 0:
                    return True
            elif now - prev_seen[2] < self.stable_seconds:
                return True
        run = side.run if side is not None else None
        if run is None:
            m = _RUN.search(path.name)
            if m and len(m.group(1)) > _RUN_MAX_DIGITS:
                self._refuse(path, key, f"{path}: the run number in the name is outside 0-999999", "bad-name")
                return None
            run = int(m.group(1)) if m else None
        self._offered[path] = key
        self._seen.pop(path, None)
        return Candidate(path, run, side.as_dict() if side is not None else {}, daq.size)
