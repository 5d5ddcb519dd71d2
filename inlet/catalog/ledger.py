"""The processed-events ledger and the outbox: exactly-once *effects* on an at-least-once broker.

A consumer calls :func:`claim_event` in the same transaction as the event's catalogue
effects. The unique key (consumer, event key) makes the second delivery of a message find
its row, so the consumer skips it; and because the row commits or rolls back together with
the effects, a crash between the two cannot leave one without the other.

Effects outside the database cannot join that transaction. They are written to the outbox
in it instead (:func:`enqueue`), and :func:`drain` sends them after commit, each with an
idempotency key that the receiver uses to drop a repeat (a crash after sending and before
marking it sent sends it again: at-least-once delivery, exactly-once effect).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rucio_inlet.catalog_models import OutboxMessage, ProcessedEvent, utcnow
from sqlalchemy import select
from sqlalchemy.orm import Session

from inlet.catalog.db import Catalog
from inlet.catalog.upsert import insert_ignore

log = logging.getLogger(__name__)


def claim_event(session: Session, consumer: str, event_key: str, event_type: str | None = None) -> bool:
    """Record the event as handled by ``consumer``; False if it already was (skip its effects).

    Two instances that receive the same message at once both insert: the database makes
    the second wait for the first, and then the second sees the duplicate and gets False.
    """
    if not event_key or len(event_key) > 255:
        raise ValueError(f"event key {event_key!r}: need 1-255 characters (hash longer keys)")
    row = {
        "consumer": consumer,
        "event_key": event_key,
        "event_type": event_type,
        "processed_at": utcnow(),
    }
    return insert_ignore(session, ProcessedEvent.__table__, [row]) == 1  # type: ignore[arg-type]


def enqueue(session: Session, kind: str, payload: dict[str, Any], idempotency_key: str) -> bool:
    """Queue a side effect for after commit; False if that key is already queued or sent."""
    row = {
        "kind": kind,
        "payload": payload,
        "idempotency_key": idempotency_key,
        "created_at": utcnow(),
        "attempts": 0,
    }
    return insert_ignore(session, OutboxMessage.__table__, [row]) == 1  # type: ignore[arg-type]


Sender = Callable[[OutboxMessage], None]


def drain(catalog: Catalog, send: Sender, limit: int = 100) -> int:
    """Send pending outbox messages in creation order; returns how many were sent.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` where the backend has it, so several
    drainers share the work without sending one message twice at the same time. A message
    whose send raises stays pending, with the error and attempt count recorded.
    """

    def work(session: Session) -> int:
        stmt = select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id).limit(limit)
        if session.get_bind().dialect.name != "sqlite":
            stmt = stmt.with_for_update(skip_locked=True)
        sent = 0
        for msg in session.scalars(stmt).all():
            msg.attempts += 1
            try:
                send(msg)
            except Exception as exc:
                msg.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("outbox %s (%s) failed: %s", msg.id, msg.idempotency_key, exc)
                continue
            msg.sent_at = utcnow()
            msg.last_error = None
            sent += 1
        return sent

    return catalog.transaction(work)
