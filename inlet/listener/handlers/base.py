"""The handler interface: what a handler gets, what it may do, and how it reports failure.

A handler acts only through ``ctx.session`` (the catalogue transaction that also holds the
event's ledger row) and ``ctx.enqueue`` (the outbox, for anything outside the database).
It must not call webhooks or publish messages itself: those would escape the transaction
and be repeated after a redelivery.

An experiment adds a handler without forking inlet by exposing a factory in the
``inlet.handlers`` entry-point group::

    [project.entry-points."inlet.handlers"]
    my-reco = "my_experiment.handlers:make_reco"

where ``make_reco(settings: ListenerSettings, options: dict) -> Handler``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from inlet.catalog import ledger
from inlet.config import ListenerSettings
from inlet.listener.events import BadEvent, Event

__all__ = ["BadEvent", "BatchHandler", "Handler", "HandlerContext", "HandlerFactory", "RucioLookup"]


class RucioLookup(Protocol):
    """The few read-only Rucio questions built-in handlers ask (a seam for unit tests)."""

    def rule_rses(self, rule_id: str) -> list[str]:
        """The RSEs a rule's expression resolves to."""
        ...

    def file_rule_states(self, scope: str, name: str) -> dict[str, str]:
        """rule id → state for every rule that covers the file (directly or through a dataset)."""
        ...

    def dataset_files(self, scope: str, name: str) -> list[tuple[str, str]]:
        """(scope, name) of the files in a dataset or container."""
        ...

    def available_on(self, rse: str, files: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``files`` that Rucio lists with an AVAILABLE replica on ``rse``.

        Asked before an irreversible effect: an event says what happened, but anyone who can
        publish can say it; Rucio's catalogue is the authority.
        """
        ...

    def problem_rules(self, not_ok_after: float) -> list[dict[str, str]]:
        """Rules that are STUCK, or still replicating ``not_ok_after`` s after creation (0: skip those)."""
        ...


@dataclass
class HandlerContext:
    session: Session
    settings: ListenerSettings
    rucio: RucioLookup
    log: logging.Logger
    enqueued: int = 0

    def enqueue(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> bool:
        """Send ``payload`` through the outbox after commit; False if that key was queued before."""
        self.enqueued += 1
        return ledger.enqueue(self.session, kind, payload, idempotency_key)


class Handler(Protocol):
    name: str

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        """Apply the event's effects. Raise :class:`BadEvent` for an event no retry can fix."""
        ...


class BatchHandler(Handler, Protocol):
    """A handler that may also take a whole batch at once (optional; see the listener).

    ``handle_batch(events, ctx)`` must have the same effects as ``handle`` called on each
    event in order, but may use set-based SQL (one statement for the batch instead of a
    few per event). The listener calls it, once per batch, before the handlers that take
    events one at a time; when it raises, the batch is redone event by event through
    ``handle``, so a failure is still pinned on one event.
    """

    def handle_batch(self, events: list[Event], ctx: HandlerContext) -> None: ...


HandlerFactory = Callable[[ListenerSettings, dict[str, Any]], Handler]
