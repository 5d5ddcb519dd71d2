"""Where files the uploader cannot take go, with the reason beside them: nothing is deleted.

``<quarantine>/<name>`` is the file, ``<quarantine>/<name>.reason.json`` says why, when and
where it came from; an alarm line is logged at ERROR (the listener's alarm webhook is the
listener's business: the uploader only logs, and operators watch the logs and this directory).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger("inlet.uploader.alarm")


def quarantine(path: Path, qdir: Path, reason: str, kind: str) -> Path | None:
    """Move ``path`` into ``qdir`` (never over an existing file) and write the reason file."""
    qdir.mkdir(parents=True, exist_ok=True)
    target = qdir / path.name
    n = 1
    while target.exists() or target.with_name(target.name + ".reason.json").exists():
        target = qdir / f"{path.name}.{n}"
        n += 1
    moved: Path | None = target
    try:
        shutil.move(str(path), str(target))
    except OSError as exc:
        # Unreadable or vanished: leave it where it is, but still say why.
        log.error("cannot move %s to quarantine (%s); it stays in place", path, exc)
        moved = None
    info = {
        "source": str(path),
        "kind": kind,
        "reason": reason,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "moved_to": str(moved) if moved else None,
    }
    target.with_name(target.name + ".reason.json").write_text(json.dumps(info, indent=2) + "\n")
    log.error("ALARM quarantined %s (%s): %s", path, kind, reason)
    return moved
