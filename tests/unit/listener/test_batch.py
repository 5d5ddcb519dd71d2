"""The set-based batch path: the same effects as one event at a time, exactly once, failures pinned."""

from __future__ import annotations

import json
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, ProcessedEvent, RunTransition
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inlet.catalog import Catalog, RunState
from inlet.catalog import runs as catalog_runs
from inlet.config import ListenerRoute, ListenerSettings, Settings
from inlet.listener.broker import Delivery
from inlet.listener.events import Event
from inlet.listener.handlers.base import HandlerContext
from inlet.listener.handlers.catalog import CatalogHandler
from inlet.listener.routing import Route, Router
from inlet.listener.service import Listener
from tests.unit.listener.conftest import FakeRucio
from tests.unit.listener.test_service import FakeLink

N = 6


def uploaded_run(session: Session) -> None:
    run = catalog_runs.upsert_run(session, "cygno", 42, scope="cygno", dataset="run42_raw")
    catalog_runs.add_files(session, run, [catalog_runs.FileSpec("cygno", f"run42_{i}.dat", 10) for i in range(N)])
    catalog_runs.transition(session, run, RunState.CLOSED)
    catalog_runs.transition(session, run, RunState.UPLOADED)


def make(catalog: Catalog, handler: Any) -> tuple[Listener, FakeLink]:
    ls = ListenerSettings(routes=[], retry_backoff=0.0)
    router = Router(ls, [Route(ListenerRoute(handler=handler.name, event_types=["*"]), handler, [])])
    link = FakeLink()
    lst = Listener(Settings(listener=ls), catalog, router, FakeRucio(), link=link)
    return lst, link


def transfer(i: int, name: str, rse: str = "S3", minute: int = 0, **extra: Any) -> Delivery:
    payload = {
        "scope": "cygno",
        "name": name,
        "dst-rse": rse,
        "request-id": f"r{i}",
        "transferred_at": f"2026-11-21 10:{minute:02d}:00",
        **extra,
    }
    doc = {"event_type": "transfer-done", "payload": payload, "created_at": "2026-11-21T10:00:00"}
    return Delivery({"message-id": f"m{i}", "ack": f"a{i}"}, json.dumps(doc).encode(), 1)


def snapshot(catalog: Catalog) -> tuple[list[tuple[str, str, int]], list[tuple[str, str]], RunState, int]:
    with catalog.session() as s:
        avail = sorted(
            (f.name, a.rse, a.available_at.minute)
            for f in s.scalars(select(catalog_runs.RunFile))
            for a in f.availability
        )
        moves = [(t.from_state, t.to_state) for t in s.scalars(select(RunTransition).order_by(RunTransition.id))]
        run = catalog_runs.get_run(s, "cygno", 42)
        ledger = int(s.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)
        return avail, moves, run.state, ledger


def batch() -> list[Delivery]:
    # Two copies of file 0 on S3 (the first time wins), every file on S3, two on TAPE,
    # one file that is not catalogued, one RSE the handler does not watch.
    out = [transfer(0, "run42_0.dat", minute=1), transfer(1, "run42_0.dat", minute=9)]
    out += [transfer(2 + i, f"run42_{i}.dat", minute=2 + i) for i in range(1, N)]
    out += [transfer(20, "run42_0.dat", "TAPE", 30), transfer(21, "run42_1.dat", "TAPE", 31)]
    out += [transfer(30, "other.dat", minute=40), transfer(31, "run42_2.dat", "SOMEWHERE", 41)]
    return out


class OneByOne(CatalogHandler):
    """The catalogue handler without its batch path: what the listener did before."""

    handle_batch = None  # type: ignore[assignment]


def test_a_batch_has_the_effects_of_its_events_one_at_a_time(tmp_path: Any) -> None:
    from inlet.catalog import open_catalog

    results = []
    for size, handler in ((100, CatalogHandler(ListenerSettings(), {})), (1, OneByOne(ListenerSettings(), {}))):
        cat = open_catalog(f"sqlite:///{tmp_path / f'c{size}.db'}")
        cat.transaction(uploaded_run)
        lst, link = make(cat, handler)
        msgs = batch()
        for start in range(0, len(msgs), size):
            lst.process(msgs[start : start + size])
        assert sorted(link.acked) == sorted(d.message_id for d in msgs) and not link.dead
        results.append(snapshot(cat))
        cat.dispose()
    batched, single = results
    assert batched == single
    avail, moves, state, ledger = batched
    assert ("run42_0.dat", "S3", 1) in avail and ("run42_0.dat", "S3", 9) not in avail
    assert moves[-1] == ("UPLOADED", "ON_S3") and state == RunState.ON_S3
    assert ledger == len(batch())


def test_a_redelivered_batch_changes_nothing(catalog: Catalog) -> None:
    catalog.transaction(uploaded_run)
    lst, link = make(catalog, CatalogHandler(ListenerSettings(), {}))
    lst.process(batch())
    before = snapshot(catalog)
    # The broker hands the same messages again (say the acks were lost): each is recognised.
    lst.process(batch())
    assert snapshot(catalog) == before
    assert len(link.acked) == 2 * len(batch())


def test_a_bad_event_in_a_batch_is_dead_lettered_alone(catalog: Catalog) -> None:
    catalog.transaction(uploaded_run)
    lst, link = make(catalog, CatalogHandler(ListenerSettings(), {}))
    bad = Delivery(
        {"message-id": "bad", "ack": "abad"},
        json.dumps(
            {
                "event_type": "transfer-done",
                "payload": {"scope": "cygno", "name": "x"},
                "created_at": "2026-11-21T10:00:00",
            }
        ).encode(),
        1,
    )
    lst.process([*batch()[:3], bad, *batch()[3:]])
    assert [m for m, _, _ in link.dead] == ["bad"]
    assert "dst-rse" in link.dead[0][1]
    assert snapshot(catalog)[2] == RunState.ON_S3


class FlakyBatch:
    """A batch handler whose batch call fails once: the per-event path must apply each event once."""

    name = "flaky"

    def __init__(self) -> None:
        self.batch_calls = 0
        self.applied: list[str] = []

    def handle_batch(self, events: list[Event], ctx: HandlerContext) -> None:
        self.batch_calls += 1
        raise RuntimeError("the set-based path fails on this batch")

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        self.applied.append(event.key)


def test_a_failing_batch_call_falls_back_to_one_event_at_a_time(catalog: Catalog) -> None:
    h = FlakyBatch()
    lst, link = make(catalog, h)
    lst.process(batch()[:4])
    assert h.batch_calls == 1 and len(h.applied) == 4 and len(set(h.applied)) == 4
    assert len(link.acked) == 4 and not link.dead
    lst.process(batch()[:4])  # redelivered: the ledger skips them, on either path
    assert len(h.applied) == 4
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(FileAvailability)) == 0
