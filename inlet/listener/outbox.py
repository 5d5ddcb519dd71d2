"""Senders of the outbox messages the handlers queued: chat webhooks and inlet events.

Each runs after the transaction that queued the message has committed, inside
:func:`inlet.catalog.ledger.drain`, which marks it sent only if the sender returns. A sender
that raises leaves the message pending for the next sweep: delivery is at least once, and
every message carries its idempotency key so that the receiver acts once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

import requests
from rucio_inlet.catalog_models import OutboxMessage, utcnow
from sqlalchemy import func, select
from sqlalchemy.orm import object_session

from inlet.config import AlarmSettings
from inlet.event_contract import publish_headers
from inlet.listener import metrics

log = logging.getLogger(__name__)

#: publish(destination-less envelope JSON, headers): sends an inlet event on the inlet topic.
Publish = Callable[[str, dict[str, str]], None]


class NotSentYet(Exception):
    """The message stays in the outbox (receiver down or busy); the next sweep retries."""


SUPPRESSED = "webhook-suppressed"


class WebhookSender:
    """POST alarms to a Discord/Slack/Mattermost incoming webhook.

    The body carries the text as both ``content`` (Discord) and ``text`` (Slack,
    Mattermost). The rate limit counts webhook messages *sent* in the last window from
    the outbox table itself, so that all listener instances share one budget. An alarm
    over the limit becomes a ``webhook-suppressed`` row (kept, with its text, and logged);
    suppressing rather than postponing keeps a storm of alarms from blocking the outbox.
    """

    def __init__(self, settings: AlarmSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = session or requests.Session()

    def __call__(self, msg: OutboxMessage) -> None:
        s = self.settings
        text = str(msg.payload.get("text", ""))
        db = object_session(msg)
        if db is not None:
            since = utcnow() - dt.timedelta(seconds=s.rate_period)
            sent = db.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.kind == msg.kind, OutboxMessage.sent_at >= since)
            )
            if int(sent or 0) >= s.rate_limit:
                log.warning("alarm suppressed by the rate limit (%d per %g s): %s", s.rate_limit, s.rate_period, text)
                msg.kind = SUPPRESSED
                metrics.ALARMS.labels("suppressed").inc()
                return
            last = db.scalar(select(func.max(OutboxMessage.sent_at)).where(OutboxMessage.kind == msg.kind))
            stmt = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == SUPPRESSED)
            if last is not None:
                stmt = stmt.where(OutboxMessage.sent_at > last)
            suppressed = int(db.scalar(stmt) or 0)
            if suppressed:
                text += f"\n(+{suppressed} more alarm(s) suppressed by the rate limit; see the listener log)"
        if not s.webhook_url:
            log.warning("alarm (no [listener.alarms] webhook_url set): %s", text)
            metrics.ALARMS.labels("logged").inc()
            return
        resp = self.http.post(
            s.webhook_url,
            json={"content": text, "text": text, "username": "inlet"},
            headers={"Idempotency-Key": msg.idempotency_key},
            timeout=s.timeout,
        )
        if resp.status_code == 429:
            raise NotSentYet(f"webhook rate-limited us (429, retry after {resp.headers.get('Retry-After', '?')} s)")
        if resp.status_code >= 300:
            raise NotSentYet(f"webhook answered {resp.status_code}: {resp.text[:200]}")
        metrics.ALARMS.labels("posted").inc()


class InletEventSender:
    """Publish an inlet event; its ``id`` is the idempotency key the consumer deduplicates on."""

    def __init__(self, publish: Publish) -> None:
        self.publish = publish

    def __call__(self, msg: OutboxMessage) -> None:
        envelope = dict(msg.payload)
        envelope.setdefault("id", msg.idempotency_key)
        self.publish(json.dumps(envelope), publish_headers(envelope))


class Dispatcher:
    """Routes each outbox message to the sender of its kind."""

    def __init__(self, senders: dict[str, Callable[[OutboxMessage], None]]) -> None:
        self.senders = senders

    def __call__(self, msg: OutboxMessage) -> None:
        sender = self.senders.get(msg.kind)
        if sender is None:
            raise NotSentYet(f"no sender for outbox kind {msg.kind!r} in this process (known: {sorted(self.senders)})")
        sender(msg)
