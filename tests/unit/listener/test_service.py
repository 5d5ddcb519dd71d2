"""The listener's batch logic with the broker link replaced at its seam (no broker, SQLite catalogue)."""

from __future__ import annotations

import json
import queue
import time
from typing import Any

from rucio_inlet.catalog_models import OutboxMessage, ProcessedEvent
from sqlalchemy import func, select, text

from inlet.catalog import Catalog
from inlet.config import ListenerRoute, ListenerSettings, Settings
from inlet.listener.broker import Delivery
from inlet.listener.events import Event
from inlet.listener.handlers.base import HandlerContext
from inlet.listener.routing import Route, Router
from inlet.listener.service import Listener
from tests.unit.listener.conftest import FakeRucio


class FakeLink:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.dead: list[tuple[str, str, str | None]] = []
        self.published: list[tuple[str, str, dict[str, str]]] = []
        self.requeued: list[tuple[str, int]] = []
        self.generation = 1
        self.inbox: queue.Queue[Delivery] = queue.Queue()

    def ack(self, d: Delivery) -> bool:
        self.acked.append(d.message_id)
        return True

    def dead_letter(self, d: Delivery, reason: str, handler: str | None = None) -> str:
        self.dead.append((d.message_id, reason, handler))
        return "dlq-id"

    def publish(self, destination: str, body: str, headers: dict[str, str]) -> None:
        self.published.append((destination, body, headers))

    def requeue(self, d: Delivery, deliveries: int) -> bool:
        self.requeued.append((d.message_id, deliveries))
        return True

    def close(self) -> None:
        pass


class Counting:
    """Writes one row per application; fails while `failures` is positive."""

    name = "counting"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        ctx.session.execute(text("INSERT INTO effects (k) VALUES (:k)"), {"k": event.key})
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("flaky")


def make(catalog: Catalog, handler: Any, **listener: Any) -> tuple[Listener, FakeLink]:
    with catalog.session() as s:
        s.execute(text("CREATE TABLE IF NOT EXISTS effects (k VARCHAR(255))"))
    ls = ListenerSettings(routes=[], retry_backoff=0.0, **listener)
    router = Router(ls, [Route(ListenerRoute(handler=handler.name, event_types=["t*"]), handler, [])])
    link = FakeLink()
    lst = Listener(Settings(listener=ls), catalog, router, FakeRucio(), link=link)
    return lst, link


def delivery(i: int, event_type: str = "t1", body: bytes | None = None) -> Delivery:
    doc = {"event_type": event_type, "payload": {"i": i}, "created_at": "2026-11-21T00:00:00"}
    return Delivery({"message-id": f"m{i}", "ack": f"a{i}"}, body or json.dumps(doc).encode(), 1)


def effects(catalog: Catalog) -> int:
    with catalog.session() as s:
        return int(s.scalar(text("SELECT COUNT(*) FROM effects")) or 0)


def test_a_batch_is_acked_after_commit_and_a_redelivery_is_skipped(catalog: Catalog) -> None:
    lst, link = make(catalog, Counting())
    lst.process([delivery(1), delivery(2), delivery(3, event_type="other")])
    assert link.acked == ["m1", "m2", "m3"]  # m3 matched no route: acked, nothing applied
    assert effects(catalog) == 2
    lst.process([delivery(1)])  # the broker delivers m1 again (say we died before the ack)
    assert link.acked[-1] == "m1" and effects(catalog) == 2
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 2


def test_a_failing_handler_is_retried_then_dead_lettered_with_the_reason(catalog: Catalog) -> None:
    lst, link = make(catalog, Counting(failures=10), handler_attempts=3)
    lst.process([delivery(1), delivery(2, event_type="other")])
    assert link.acked == ["m2"] and len(lst.retries) == 1
    for _ in range(2):
        time.sleep(0.001)
        lst.process(lst._take())
    assert link.acked == ["m2"]
    ((mid, reason, handler),) = link.dead
    assert (mid, handler) == ("m1", "counting")
    assert reason.startswith("handler counting failed 3 times; last error: RuntimeError: flaky")
    assert effects(catalog) == 0  # every failed attempt was rolled back
    with catalog.session() as s:
        alarm = s.scalars(select(OutboxMessage)).one()
    assert "dead-letter queue" in alarm.payload["text"]


def test_a_handler_that_recovers_applies_its_effect_once(catalog: Catalog) -> None:
    lst, link = make(catalog, Counting(failures=1), handler_attempts=3)
    lst.process([delivery(1)])
    time.sleep(0.001)
    lst.process(lst._take())
    assert link.acked == ["m1"] and link.dead == [] and effects(catalog) == 1


def test_bad_messages_are_dead_lettered_and_the_rest_of_the_batch_applies(catalog: Catalog) -> None:
    lst, link = make(catalog, Counting(), max_body_bytes=1024)
    lst.process([delivery(1, body=b"{oops"), delivery(2), delivery(3, body=b"x" * 2000)])
    assert [d[0] for d in link.dead] == ["m1", "m3"]
    assert link.dead[0][1].startswith("malformed JSON") and link.dead[1][1].startswith("oversized body")
    assert link.acked == ["m2"] and effects(catalog) == 1


def test_outbox_inlet_events_are_published_after_commit(catalog: Catalog) -> None:
    class Emits:
        name = "emits"

        def handle(self, event: Event, ctx: HandlerContext) -> None:
            ctx.enqueue("inlet-event", {"event_type": "daq-release", "payload": {}}, f"k-{event.key}")

    lst, link = make(catalog, Emits())
    lst.process([delivery(1)])
    lst._sweep_outbox()
    ((dest, body, headers),) = link.published
    assert dest == "/topic/inlet.events"
    assert json.loads(body)["id"] == headers["inlet_event_id"] and headers["event_type"] == "daq-release"
    with catalog.session() as s:
        assert s.scalars(select(OutboxMessage)).one().sent_at is not None


def test_stuck_rules_raise_one_alarm_each(catalog: Catalog) -> None:
    lst, _ = make(catalog, Counting())
    rucio = FakeRucio()
    rucio.problems = [
        {"id": "r1", "did": "cygno:run1_raw", "rse_expression": "TAPE", "state": "STUCK", "error": "no source"},
        {"id": "r2", "did": "cygno:run2_raw", "rse_expression": "S3", "state": "REPLICATING", "error": ""},
    ]
    lst.rucio = rucio
    lst._check_rules()
    lst._last_rule_check = 0.0
    lst._check_rules()  # looked again: the same alarms are not queued twice
    with catalog.session() as s:
        texts = sorted(m.payload["text"] for m in s.scalars(select(OutboxMessage)))
    assert texts == [
        ":warning: rule r1 (cygno:run1_raw → TAPE) is STUCK: no source",
        ":warning: rule r2 (cygno:run2_raw → S3) is REPLICATING",
    ]


def test_a_redelivered_message_is_requeued_counted_then_dead_lettered(catalog: Catalog) -> None:
    lst, link = make(catalog, Counting(), max_deliveries=3)
    first = delivery(1)
    again = Delivery({**first.headers, "redelivered": "true"}, first.body, 1)
    lst.process([again])
    assert (link.requeued, link.dead, effects(catalog)) == ([("m1", 1)], [], 0)
    counted = Delivery({**again.headers, "inlet_deliveries": "1"}, first.body, 1)
    lst.process([counted])
    assert link.requeued[-1] == ("m1", 2)
    lst.process([Delivery({**again.headers, "inlet_deliveries": "2"}, first.body, 1)])
    assert [(m, why[:39]) for m, why, _ in link.dead] == [("m1", "delivered 3 times without being settled")]
    # A junk counter counts as none, and a copy that comes back fresh is handled as usual.
    lst.process([Delivery({**again.headers, "inlet_deliveries": "x" * 5000}, first.body, 1)])
    assert link.requeued[-1] == ("m1", 1)
    lst.process([Delivery({**first.headers, "inlet_deliveries": "2"}, first.body, 1)])
    assert effects(catalog) == 1


def test_an_error_in_routing_or_a_bug_dead_letters_instead_of_ending_the_listener(catalog: Catalog) -> None:
    lst, link = make(catalog, Counting(), handler_attempts=2)

    def broken(event: Event) -> list[Any]:
        raise ValueError("Exceeds the limit (4300 digits)")

    lst.router.handlers_for = broken  # type: ignore[method-assign]
    lst._process_guarded([delivery(1)])
    assert [(m, why) for m, why, _ in link.dead] == [
        ("m1", "cannot route the message: ValueError: Exceeds the limit (4300 digits)")
    ]

    def crash(batch: list[Delivery]) -> None:
        raise RuntimeError("a bug")

    lst.process = crash  # type: ignore[method-assign]
    lst._process_guarded([delivery(2)])
    assert len(lst.retries) == 1 and len(link.dead) == 1
    lst._process_guarded([delivery(2)])
    assert link.dead[-1][:2] == ("m2", "internal error: RuntimeError: a bug (2 attempts)")


class BreaksTheTransaction:
    """Fails the way a database does (a transaction-level error) on events marked poison."""

    name = "breaker"

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        from sqlalchemy.exc import OperationalError

        if event.payload.get("i") == 0:
            raise OperationalError("INSERT ...", {}, Exception("Illegal mix of collations"))
        ctx.session.execute(text("INSERT INTO effects (k) VALUES (:k)"), {"k": event.key})


def test_an_event_that_alone_breaks_the_transaction_is_isolated_then_dead_lettered(catalog: Catalog) -> None:
    lst, link = make(catalog, BreaksTheTransaction(), handler_attempts=2)
    lst.process([delivery(0), delivery(1), delivery(2)])
    assert effects(catalog) == 0 and lst.alone == {"m0", "m1", "m2"}
    for _ in range(3):
        batch, lst.retries = [d for _, d in lst.retries], []
        lst.process(batch)
    assert effects(catalog) == 2  # the others went through in batches of their own
    assert [(m, why[:60]) for m, why, _ in link.dead] == [
        ("m0", "the catalogue transaction failed 2 times on this event alone")
    ]
    assert lst.alone == set() and lst.retries == []


def test_a_catalogue_that_does_not_answer_dead_letters_nothing(catalog: Catalog) -> None:
    lst, link = make(catalog, BreaksTheTransaction(), handler_attempts=2)
    lst._catalog_answers = lambda: False  # type: ignore[method-assign]
    for _ in range(5):
        lst.process([delivery(0)])
    assert link.dead == [] and len(lst.retries) == 5 and lst.attempts == {}
