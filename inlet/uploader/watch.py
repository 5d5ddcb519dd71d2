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
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_RUN = re.compile(r"run0*(\d+)")

#: A directory mtime this close to the listing that saw it is not trusted: an entry added in
#: the same coarse file-system clock tick would leave the mtime unchanged.
_MTIME_TICK_S = 0.1


@dataclass
class Candidate:
    path: Path
    run: int | None
    sidecar: dict[str, Any]


@dataclass
class ClosedFileDetector:
    directory: Path
    stable_seconds: float
    sidecar_suffix: str = ".json"
    full_scan_every: float = 10.0
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)
    _offered: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: Directory mtime (ns) a full scan saw and may be trusted, and the wall time of that scan.
    _dir_mtime: int | None = None
    _full_at: float = 0.0

    def _nothing_new(self, wall: float) -> bool:
        if self._dir_mtime is None or wall - self._full_at >= self.full_scan_every:
            return False
        try:
            return self.directory.stat().st_mtime_ns == self._dir_mtime
        except OSError:
            return False

    def scan(self, now: float | None = None) -> list[Candidate]:
        wall = time.time()
        now = wall if now is None else now
        if self._nothing_new(wall):
            return []
        dir_mtime = self.directory.stat().st_mtime_ns
        waiting = False
        out = []
        for path in sorted(self.directory.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.name.endswith(self.sidecar_suffix):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            if self._offered.get(path) == key:
                continue
            sidecar_path = path.with_name(path.name + self.sidecar_suffix)
            sidecar: dict[str, Any] | None = None
            if sidecar_path.is_file():
                try:
                    doc = json.loads(sidecar_path.read_text())
                    sidecar = doc if isinstance(doc, dict) else {}
                except (OSError, ValueError) as exc:
                    log.warning("sidecar %s unreadable (%s): waiting for it to be complete", sidecar_path, exc)
                    waiting = True
                    continue
            if sidecar is None:
                prev = self._seen.get(path)
                if prev is None or prev[:2] != key:
                    self._seen[path] = (*key, now)
                    if self.stable_seconds > 0:
                        waiting = True
                        continue
                elif now - prev[2] < self.stable_seconds:
                    waiting = True
                    continue
            self._offered[path] = key
            self._seen.pop(path, None)
            side = sidecar or {}
            run = side.get("run")
            if run is None:
                m = _RUN.search(path.name)
                run = int(m.group(1)) if m else None
            out.append(Candidate(path, int(run) if run is not None else None, side))
        trusted = not waiting and wall - dir_mtime / 1e9 > _MTIME_TICK_S
        self._dir_mtime = dir_mtime if trusted else None
        self._full_at = wall
        return out
