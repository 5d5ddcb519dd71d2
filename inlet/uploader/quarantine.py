"""Where files the uploader cannot take go, with the reason beside them: nothing is deleted.

``<quarantine>/<name>`` is the file, ``<quarantine>/<name>.reason.json`` says why, when and
where it came from; an alarm line is logged at ERROR, and the callers publish a
``file-quarantined`` event (:func:`inlet.uploader.events.file_quarantined`) built from
:func:`quarantine_info`'s answer, which the listener routes to its alarm webhook.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("inlet.uploader.alarm")


def quarantine(path: Path, qdir: Path, reason: str, kind: str) -> Path | None:
    """Move ``path`` into ``qdir`` (never over an existing file) and write the reason file."""
    moved = quarantine_info(path, qdir, reason, kind)["moved_to"]
    return Path(moved) if moved else None


def quarantine_info(path: Path, qdir: Path, reason: str, kind: str) -> dict[str, Any]:
    """:func:`quarantine`, answering with what the reason file says (source, kind, reason, at, moved_to)."""
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
    return info
