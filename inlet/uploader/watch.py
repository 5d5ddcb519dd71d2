"""Which DAQ files are closed: a sidecar JSON says so, or size and mtime stayed still long enough.

The DAQ may write ``<file><suffix>`` (``run012345.mid.gz.json``) when it closes a file, with
optional ``run``, ``adler32``, ``md5``, ``size``: then the file is taken at once and the
checksums are verified against it. Without a sidecar a file counts as closed once its size and
mtime have not changed for ``stable_seconds``. Files are offered once per (size, mtime): a
refused file is not resubmitted until it changes.
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
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)
    _offered: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def scan(self, now: float | None = None) -> list[Candidate]:
        now = time.time() if now is None else now
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
                    continue
            if sidecar is None:
                prev = self._seen.get(path)
                if prev is None or prev[:2] != key:
                    self._seen[path] = (*key, now)
                    if self.stable_seconds > 0:
                        continue
                elif now - prev[2] < self.stable_seconds:
                    continue
            self._offered[path] = key
            self._seen.pop(path, None)
            side = sidecar or {}
            run = side.get("run")
            if run is None:
                m = _RUN.search(path.name)
                run = int(m.group(1)) if m else None
            out.append(Candidate(path, int(run) if run is not None else None, side))
        return out
