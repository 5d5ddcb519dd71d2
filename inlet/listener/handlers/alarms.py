"""Alarms: what an operator must look at, sent to a chat webhook, deduplicated and rate-limited.

Deduplication happens when the alarm is queued: its outbox idempotency key is the alarm's
fingerprint plus the current ``dedup_window`` bucket, so the same alarm raised again and
again (by every redelivery, by every instance) is queued once per window. Rate limiting
happens when it is sent (``inlet.listener.outbox``), across all instances: an alarm over the
limit is not posted but kept in the outbox as ``webhook-suppressed``, and the next alarm
posted says how many were suppressed, so a storm costs one line per window, not a flood.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy.orm import Session

from inlet.catalog import ledger
from inlet.config import AlarmSettings, ListenerSettings
from inlet.event_contract import FILE_QUARANTINED
from inlet.listener.events import Event
from inlet.listener.handlers.base import HandlerContext

WEBHOOK = "webhook"


def queue_alarm(session: Session, settings: AlarmSettings, fingerprint: str, text: str) -> bool:
    """Queue an alarm in the caller's transaction; False if the same one is queued in this window."""
    bucket = int(time.time() // settings.dedup_window)
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:40]
    key = f"alarm:{digest}:{bucket}"
    return ledger.enqueue(session, WEBHOOK, {"text": text, "fingerprint": fingerprint}, key)


class AlarmHandler:
    name = "alarms"

    def __init__(self, settings: ListenerSettings, options: dict[str, Any]) -> None:
        self.settings = settings.alarms

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        if event.event_type == "transfer-failed":
            p = event.payload
            scope, name = event.require("scope", "name")
            rse = p.get("dst-rse") or "?"
            text = (
                f":warning: transfer of {scope}:{name} to {rse} failed"
                f" (from {p.get('src-rse') or '?'}): {p.get('reason') or 'no reason given'}"
            )
            queue_alarm(ctx.session, self.settings, f"transfer-failed|{scope}|{name}|{rse}", text)
        elif event.event_type == FILE_QUARANTINED:
            # Published by the uploader (inlet.uploader.events); one event per quarantine.
            p = event.payload
            where = p.get("moved_to") or "left in place"
            run = f" of run {p['run']}" if p.get("run") is not None else ""
            text = (
                f":rotating_light: DAQ file {p.get('source') or p.get('name') or '?'}{run} quarantined on "
                f"{p.get('host') or '?'} ({p.get('kind') or '?'}): {p.get('reason') or 'no reason given'}; "
                f"now at {where}"
            )
            queue_alarm(ctx.session, self.settings, f"{FILE_QUARANTINED}|{event.key}", text[:1800])
        else:
            text = f":warning: {event.event_type}: {event.payload}"
            queue_alarm(ctx.session, self.settings, f"{event.event_type}|{event.key}", text[:1800])
