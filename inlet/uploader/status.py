"""The uploader's state at a glance, from Redis: what ``inlet uploader status`` prints and the
web status page shows (one definition, so both say the same thing)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from inlet.config import Settings
from inlet.uploader import pacing
from inlet.uploader.pacing import RseSlots

#: Reason files shown at most (the newest): the page stays small if a DAQ floods the quarantine.
QUARANTINE_SHOWN = 200


def uploader_status(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    """Queue depth, batches waiting for tokens, totals and the recent grant rate; RedisError if unreachable."""
    now = time.time()
    recent = [g for g in pacing.grants(client) if now - float(g["at"]) <= 60]
    depth: Any = client.llen(settings.uploader.queue)
    slots = RseSlots(client, settings.uploader.rse_concurrency)
    return {
        "queue": settings.uploader.queue,
        "queued": int(depth),
        "waiting_for_tokens": pacing.counter(client, pacing.WAITING),
        "registered_total": pacing.counter(client, pacing.REGISTERED),
        "errors_total": pacing.counter(client, pacing.ERRORS),
        "files_per_s_last_minute": sum(int(g["files"]) for g in recent) / 60.0,
        "rse_slots_in_use": {rse: slots.in_use(rse) for rse in settings.uploader.rse_concurrency},
    }


def quarantined(qdir: Path, limit: int = QUARANTINE_SHOWN) -> list[dict[str, Any]]:
    """The newest reason files of the quarantine (what, why, when), newest first; unreadable ones say so."""
    try:
        files = sorted(qdir.glob("*.reason.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    except OSError:
        return []
    out = []
    for p in files:
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            doc = {"reason": f"unreadable reason file: {exc}"}
        if not isinstance(doc, dict):
            doc = {"reason": "reason file is not a JSON object"}
        doc.setdefault("file", p.name.removesuffix(".reason.json"))
        out.append(doc)
    return out
