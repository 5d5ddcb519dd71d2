"""The listener's main loop: take events in batches, apply them with their ledger rows, then ack.

One batch is one catalogue transaction. Each (event, handler) pair runs in a savepoint that
holds its ledger claim and its effects, so a failing handler rolls back only its own work.
After the commit the listener acknowledges every event whose handlers all succeeded; an
event with a failed handler stays unacknowledged and is retried with backoff, and after
``handler_attempts`` failures it goes to the DLQ (handlers that succeeded keep their ledger
rows, so a replay re-runs only the one that failed).

SIGTERM/SIGINT set a flag that the loop reads between batches: the batch in hand is
finished (committed and acknowledged), the rest of the prefetched messages are handed back
by disconnecting without acknowledging them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from rucio_inlet.catalog_models import ProcessedEvent, utcnow
from sqlalchemy import select, text
from sqlalchemy.exc import InternalError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from inlet.catalog import Catalog, ledger
from inlet.catalog.upsert import insert_ignore
from inlet.config import Settings
from inlet.listener import metrics
from inlet.listener.broker import BrokerLink, Delivery, Link
from inlet.listener.events import BadEvent, Event, parse_message
from inlet.listener.handlers.alarms import queue_alarm
from inlet.listener.handlers.base import BatchHandler, Handler, HandlerContext, RucioLookup
from inlet.listener.outbox import Dispatcher, InletEventSender, WebhookSender
from inlet.listener.reco import RECO_KIND, RecoSender, backend_for
from inlet.listener.routing import Router

log = logging.getLogger(__name__)

#: Errors that break the whole transaction (or mean the database is gone): the batch is
#: retried as a whole, and they never count against a handler.
_TRANSACTION_ERRORS = (OperationalError, InternalError, StaleDataError)
#: Seconds between looks at the DLQ's size (for the dlq_size metric).
DLQ_LOOK_INTERVAL = 30.0


class _HandlerFailed(Exception):
    """A handler failed on the fast path: redo the batch with a savepoint per handler."""


@dataclass
class _Item:
    delivery: Delivery
    event: Event
    handlers: list[Handler]
    failed: list[tuple[str, str]] = field(default_factory=list)


class Listener:
    def __init__(
        self, settings: Settings, catalog: Catalog, router: Router, rucio: RucioLookup, link: Link | None = None
    ) -> None:
        """``link``: the broker link (default: a :class:`BrokerLink` on both of the listener's queues)."""
        self.settings = settings
        self.ls = settings.listener
        self.catalog = catalog
        self.router = router
        self.rucio = rucio
        self.link: Link = link or BrokerLink(settings.broker, self.ls, [self.ls.rucio_queue, self.ls.inlet_queue])
        self.stopping = threading.Event()
        self.attempts: dict[str, int] = {}
        #: Message ids to handle in a batch of their own (their batch's transaction failed).
        self.alone: set[str] = set()
        self.retries: list[tuple[float, Delivery]] = []
        self.handled = 0
        self.dispatch = Dispatcher(
            {
                "webhook": WebhookSender(self.ls.alarms),
                "inlet-event": InletEventSender(
                    lambda body, headers: self.link.publish(settings.broker.inlet_topic, body, headers)
                ),
                RECO_KIND: RecoSender(backend_for(self.ls.reco, settings.redis.url)),
            }
        )
        self._last_sweep = 0.0
        self._last_dlq_look = 0.0
        self._last_rule_check = 0.0
        self._outbox_dirty = False

    # -- life cycle ------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: finishing the current batch, then handing the rest back", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self, max_events: int | None = None) -> int:
        """Consume until stopped (or ``max_events`` handled); returns the number handled."""
        first = True
        try:
            while not self.stopping.is_set():
                if not self.link.is_connected():
                    if first:
                        # At start a refused login or an absent broker is a configuration
                        # error: say so and stop (BrokerUnavailable), rather than retry forever.
                        self.link.connect()
                    else:
                        metrics.RECONNECTS.inc()
                        log.warning("lost the broker connection; reconnecting")
                        self._forget_old_deliveries()
                        if not self.link.connect_with_backoff(self.stopping):
                            break
                    first = False
                batch = self._take()
                if batch:
                    self._process_guarded(batch)
                self._sweep_outbox()
                self._refresh_dlq_size()
                self._check_rules()
                if max_events is not None and self.handled >= max_events:
                    break
        finally:
            self.link.close()
        return self.handled

    def stop(self) -> None:
        self.stopping.set()

    def _forget_old_deliveries(self) -> None:
        """Messages of a dead connection: the broker redelivers them, so drop our copies."""
        self.retries = [(due, d) for due, d in self.retries if d.generation == self.link.generation]
        while True:
            try:
                self.link.inbox.get_nowait()
            except queue.Empty:
                break

    def _take(self) -> list[Delivery]:
        now = time.monotonic()
        due = [d for t, d in self.retries if t <= now]
        self.retries = [(t, d) for t, d in self.retries if t > now]
        batch = list(due)
        timeout = 0.2 if not due else 0.0
        try:
            batch.append(self.link.inbox.get(timeout=timeout) if timeout else self.link.inbox.get_nowait())
        except queue.Empty:
            return batch
        while len(batch) < self.ls.batch_size:
            try:
                batch.append(self.link.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    # -- one batch ---------------------------------------------------------------------------
    def _process_guarded(self, batch: list[Delivery]) -> None:
        """:meth:`process`, with a last line of defence: an error that escaped it ends no process.

        Every known failure is handled inside :meth:`process` (bad bodies, failing handlers, a
        failing database). Anything else is a bug met on these messages: they are retried with
        backoff like a failing handler, and after ``handler_attempts`` go to the DLQ with the
        error as the reason, so one message cannot stop the listener (nor loop in it forever).
        """
        try:
            self.process(batch)
        except Exception as exc:
            log.exception("unexpected error on a batch of %d message(s)", len(batch))
            why = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
            for d in batch:
                key = f"message:{d.message_id}"
                n = self.attempts.get(key, 0) + 1
                self.attempts[key] = n
                if n >= self.ls.handler_attempts:
                    self.attempts.pop(key, None)
                    self._dead_letter(d, None, f"{why} ({n} attempts)", None)
                else:
                    self.retries.append((time.monotonic() + self.ls.retry_backoff * (2 ** (n - 1)), d))

    def process(self, batch: list[Delivery]) -> None:
        # Messages whose batch's transaction failed while the catalogue answered run alone,
        # so that one whose content breaks the transaction is found (and, if it keeps doing
        # so, dead-lettered) without holding back the others.
        alone = [d for d in batch if d.message_id in self.alone] if len(batch) > 1 else []
        for d in alone:
            self._process_batch([d])
        rest = [d for d in batch if d not in alone] if alone else batch
        if rest:
            self._process_batch(rest)

    def _process_batch(self, batch: list[Delivery]) -> None:
        items: list[_Item] = []
        for d in batch:
            if d.redelivered:
                metrics.REDELIVERIES.inc()
                self._count_delivery(d)
                continue
            try:
                event = parse_message(d.body, d.headers, self.ls.max_body_bytes)
                handlers = self.router.handlers_for(event)
            except BadEvent as exc:
                self._dead_letter(d, None, str(exc), None)
                continue
            except Exception as exc:  # the message boundary: nothing a body holds may end the listener
                self._dead_letter(d, None, f"cannot route the message: {type(exc).__name__}: {str(exc)[:300]}", None)
                continue
            created = event.created()
            if created is not None:
                metrics.LAG.observe(max(0.0, (dt.datetime.now(dt.UTC) - created).total_seconds()))
            items.append(_Item(d, event, handlers))
        if not items:
            return
        work = [i for i in items if i.handlers]
        if work:
            try:
                try:
                    # Fast path: the whole batch without savepoints (two round trips fewer per
                    # event). If any handler fails, that transaction is thrown away whole...
                    self.catalog.transaction(lambda s: self._apply(s, work, isolate=False))
                except _HandlerFailed:
                    # ...and the batch runs again with a savepoint per (event, handler), so
                    # that only the failing handler's work is rolled back.
                    self.catalog.transaction(lambda s: self._apply(s, work, isolate=True))
            except Exception as exc:
                # The transaction failed: nothing was committed; keep every event and try again.
                log.error("catalogue transaction failed (%s: %s); retrying the batch", type(exc).__name__, exc)
                self._transaction_failed(items, f"{type(exc).__name__}: {str(exc)[:300]}")
                return
        for item in items:
            self._settle(item)

    def _transaction_failed(self, items: list[_Item], why: str) -> None:
        """Retry a batch whose transaction failed; dead-letter an event that alone keeps failing it.

        If the catalogue does not answer, it is down: every event waits, however long, and no
        attempt is counted. If it answers, this batch's content broke the transaction: each
        event is retried alone, and one that still fails ``handler_attempts`` times alone goes
        to the DLQ (a message must not stall the listener forever either).
        """
        due = time.monotonic() + max(self.ls.retry_backoff, 0.5)
        if not self._catalog_answers():
            self.retries.extend((due, i.delivery) for i in items)
            return
        for i in items:
            d = i.delivery
            if len(items) > 1:
                self.alone.add(d.message_id)
                self.retries.append((due, d))
                continue
            n = self.attempts.get(f"tx:{d.message_id}", 0) + 1
            self.attempts[f"tx:{d.message_id}"] = n
            if n >= self.ls.handler_attempts:
                self.attempts.pop(f"tx:{d.message_id}", None)
                self.alone.discard(d.message_id)
                self._dead_letter(
                    d,
                    i.event,
                    f"the catalogue transaction failed {n} times on this event alone, "
                    f"while the catalogue answers; last error: {why}",
                    None,
                )
            else:
                self.retries.append((due, d))

    def _catalog_answers(self) -> bool:
        try:
            self.catalog.transaction(lambda s: s.execute(text("SELECT 1")))
        except Exception:
            return False
        return True

    def _count_delivery(self, d: Delivery) -> None:
        """A redelivered message: dead-letter it after ``max_deliveries``, else requeue it counted.

        The broker redelivers what a listener held when it died (or was stopped). A message
        that *kills* the listener while it is handled would do so again on every restart; so
        each such delivery is counted (the count travels with the message, see
        :meth:`BrokerLink.requeue`) and the message is handled again from the queue's end,
        until the count reaches ``[listener] max_deliveries``: then it goes to the DLQ.
        """
        n = d.deliveries + 1
        if n >= self.ls.max_deliveries:
            self._dead_letter(
                d,
                None,
                f"delivered {n} times without being settled: a listener holding it died or was stopped "
                f"each time ([listener] max_deliveries = {self.ls.max_deliveries})",
                None,
            )
        elif self.link.requeue(d, n):
            log.info(
                "message %s was delivered before, unsettled (%d of %d): requeued",
                d.message_id,
                n,
                self.ls.max_deliveries,
            )

    def _consumer(self, handler: Handler) -> str:
        return f"{self.ls.consumer}:{handler.name}"[:64]

    def _claim_batch(self, session: Session, items: list[_Item]) -> set[tuple[str, str]]:
        """Claim every (handler, event) of the batch in two statements; returns those to skip.

        One SELECT finds what the ledger already holds (redeliveries), one multi-row INSERT
        claims the rest. If that INSERT claims fewer rows than it was given, another
        instance claimed some in between: the batch goes to the slow path, which claims
        (and waits for the other instance) one row at a time.
        """
        wanted = {(self._consumer(h), i.event.key): i.event.event_type[:64] for i in items for h in i.handlers}
        have: set[tuple[str, str]] = set()
        by_consumer: dict[str, list[str]] = {}
        for c, k in wanted:
            by_consumer.setdefault(c, []).append(k)
        for consumer, keys in by_consumer.items():
            for start in range(0, len(keys), 500):
                # consumer = ? AND event_key IN (...): a range on the ledger's unique key, which
                # MariaDB does not always use for a row-constructor IN over both columns (and
                # then every batch scans a ledger that grows with every event).
                rows = session.execute(
                    select(ProcessedEvent.event_key).where(
                        ProcessedEvent.consumer == consumer, ProcessedEvent.event_key.in_(keys[start : start + 500])
                    )
                )
                have.update((consumer, str(k)) for (k,) in rows)
        now = utcnow()
        new = [
            {"consumer": c, "event_key": k, "event_type": t, "processed_at": now}
            for (c, k), t in wanted.items()
            if (c, k) not in have
        ]
        if insert_ignore(session, ProcessedEvent.__table__, new) != len(new):  # type: ignore[arg-type]
            raise _HandlerFailed("a concurrent instance claimed events of this batch")
        return have

    def _apply(self, session: Session, items: list[_Item], *, isolate: bool) -> None:
        ctx = HandlerContext(session=session, settings=self.ls, rucio=self.rucio, log=log)
        claimed_before = set() if isolate else self._claim_batch(session, items)
        batched: set[int] = set()
        if not isolate:
            batched = self._apply_batched(ctx, items, claimed_before)
        for item in items:
            item.failed = []
            for handler in item.handlers:
                if id(handler) in batched:
                    continue
                consumer = self._consumer(handler)
                started = time.perf_counter()
                try:
                    with session.begin_nested() if isolate else contextlib.nullcontext():
                        if isolate:
                            fresh = ledger.claim_event(session, consumer, item.event.key, item.event.event_type[:64])
                        else:
                            fresh = (consumer, item.event.key) not in claimed_before
                        if not fresh:
                            metrics.DUPLICATES.inc()
                            continue
                        handler.handle(item.event, ctx)
                        if isolate:
                            session.flush()
                except _TRANSACTION_ERRORS:
                    raise
                except Exception as exc:
                    if not isolate:
                        raise _HandlerFailed from exc
                    if isinstance(exc, BadEvent):
                        item.failed.append((handler.name, f"bad event: {exc}"))
                        continue
                    log.warning(
                        "handler %s failed on %s (%s): %s: %s",
                        handler.name,
                        item.event.event_type,
                        item.event.key,
                        type(exc).__name__,
                        exc,
                    )
                    item.failed.append((handler.name, f"{type(exc).__name__}: {exc}"))
                finally:
                    metrics.HANDLER_SECONDS.labels(handler.name).observe(time.perf_counter() - started)
        if not isolate:
            # A failure at flush time belongs to some handler too: find it on the slow path.
            try:
                session.flush()
            except _TRANSACTION_ERRORS:
                raise
            except Exception as exc:
                raise _HandlerFailed from exc
        # Anything a handler queued is sent after commit by the sweep that follows.
        if ctx.enqueued:
            self._outbox_dirty = True

    def _apply_batched(self, ctx: HandlerContext, items: list[_Item], claimed_before: set[tuple[str, str]]) -> set[int]:
        """Give each batch-capable handler its fresh events of the batch in one call; their ids.

        Set-based SQL is what makes a batch cheap: a handler with ``handle_batch`` runs a
        few statements for the whole batch instead of a few per event. Its events were
        claimed in the ledger by :meth:`_claim_batch` like every other (event, handler).
        Any failure sends the batch to the slow path, which calls ``handle`` per event.
        """
        done: set[int] = set()
        for handler in self._batch_handlers(items):
            consumer = self._consumer(handler)
            events = []
            for item in items:
                if any(h is handler for h in item.handlers):
                    if (consumer, item.event.key) in claimed_before:
                        metrics.DUPLICATES.inc()
                    else:
                        events.append(item.event)
            started = time.perf_counter()
            try:
                if events:
                    handler.handle_batch(events, ctx)
            except _TRANSACTION_ERRORS:
                raise
            except Exception as exc:
                raise _HandlerFailed from exc
            finally:
                metrics.HANDLER_SECONDS.labels(handler.name).observe(time.perf_counter() - started)
            done.add(id(handler))
        return done

    @staticmethod
    def _batch_handlers(items: list[_Item]) -> list[BatchHandler]:
        seen: dict[int, BatchHandler] = {}
        for item in items:
            for h in item.handlers:
                if id(h) not in seen and callable(getattr(h, "handle_batch", None)):
                    seen[id(h)] = h  # type: ignore[assignment]
        return list(seen.values())

    def _settle(self, item: _Item) -> None:
        event, d = item.event, item.delivery
        self.alone.discard(d.message_id)
        self.attempts.pop(f"tx:{d.message_id}", None)
        if not item.failed:
            self.attempts.pop(event.key, None)
            if self.link.ack(d):
                metrics.EVENTS.labels(event.event_type, "handled" if item.handlers else "ignored").inc()
                self.handled += 1
            return
        bad = [(h, why) for h, why in item.failed if why.startswith("bad event:")]
        if bad:
            self._dead_letter(d, event, bad[0][1], bad[0][0])
            return
        n = self.attempts.get(event.key, 0) + 1
        self.attempts[event.key] = n
        handler, why = item.failed[0]
        if n >= self.ls.handler_attempts:
            self.attempts.pop(event.key, None)
            self._dead_letter(d, event, f"handler {handler} failed {n} times; last error: {why}", handler)
            return
        delay = self.ls.retry_backoff * (2 ** (n - 1))
        log.info(
            "retrying %s (%s) in %.1f s (attempt %d/%d)",
            event.event_type,
            event.key,
            delay,
            n + 1,
            self.ls.handler_attempts,
        )
        self.retries.append((time.monotonic() + delay, d))

    def _dead_letter(self, d: Delivery, event: Event | None, reason: str, handler: str | None) -> None:
        kind = "handler" if handler else "bad-message"
        # A rejected message's own event_type header is not trusted as a metric label or in the
        # alarm text: anyone who can publish could fill the registry with labels.
        what = event.event_type if event else "message"
        try:
            # The alarm is queued before the message moves: if we die in between, the
            # redelivered message raises the same alarm, which the dedup key drops.
            self.catalog.transaction(
                lambda s: queue_alarm(
                    s,
                    self.ls.alarms,
                    f"dlq|{kind}|{handler or reason[:40]}",
                    f":rotating_light: {what} {d.message_id} sent to the dead-letter queue {self.ls.dlq}: {reason}",
                )
            )
            self._outbox_dirty = True
        except Exception as exc:
            log.error("could not queue the DLQ alarm: %s", exc)
        dlq_id = self.link.dead_letter(d, reason, handler)
        if dlq_id is not None:
            metrics.DEAD_LETTERED.labels(kind).inc()
            metrics.EVENTS.labels(what, "dead-lettered").inc()
            self.handled += 1
            log.warning("dead-lettered %s as %s: %s", d.message_id, dlq_id, reason)

    def _check_rules(self) -> None:
        """Alarm on rules that are STUCK or not OK long after creation (hermes has no event for that)."""
        interval = self.ls.alarms.rule_check_interval
        now = time.monotonic()
        if not interval or now - self._last_rule_check < interval:
            return
        self._last_rule_check = now
        try:
            rules = self.rucio.problem_rules(self.ls.alarms.rule_not_ok_after)
        except Exception as exc:
            log.warning("could not list problem rules in Rucio: %s: %s", type(exc).__name__, exc)
            return
        if not rules:
            return

        def work(session: Session) -> None:
            for r in rules:
                text = f":warning: rule {r['id']} ({r['did']} → {r['rse_expression']}) is {r['state']}" + (
                    f": {r['error']}" if r.get("error") else ""
                )
                queue_alarm(session, self.ls.alarms, f"rule|{r['id']}|{r['state']}", text[:1800])

        try:
            self.catalog.transaction(work)
            self._outbox_dirty = True
        except Exception as exc:
            log.warning("could not queue rule alarms: %s", exc)

    def _refresh_dlq_size(self) -> None:
        """Browse the DLQ now and then for the dlq_size gauge (a browse reads, it consumes nothing)."""
        now = time.monotonic()
        if now - self._last_dlq_look < DLQ_LOOK_INTERVAL:
            return
        self._last_dlq_look = now
        from inlet.listener.dlq import DeadLetterQueue

        try:
            metrics.DLQ_SIZE.set(len(DeadLetterQueue(self.settings.broker, self.ls, timeout=5).letters()))
        except Exception as exc:
            log.info("could not look at the DLQ: %s", exc)

    # -- outbox --------------------------------------------------------------------------------
    def _sweep_outbox(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or self._outbox_dirty or now - self._last_sweep >= self.ls.outbox_interval):
            return
        self._outbox_dirty = False
        self._last_sweep = now
        try:
            sent = ledger.drain(self.catalog, self.dispatch)
        except Exception as exc:
            # Unsent messages stay in the outbox; the next sweep tries again.
            log.warning("outbox sweep failed: %s: %s", type(exc).__name__, exc)
            return
        if sent:
            metrics.OUTBOX_SENT.inc(sent)
