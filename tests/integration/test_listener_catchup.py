"""Catch-up after an outage: a queue full of real-format events drained by 1 and by 2 listeners.

The events wait in the broker (no listener runs) and include hermes-style repeats (the same
event sent twice, under two message ids). Then listeners start on the same queue and the
same MariaDB catalogue; when every message is acknowledged, each event must have had its
effect exactly once: one ledger row and one availability row per event, nothing in the DLQ.
The run has one file more than the events cover, so it never moves (no Rucio look is asked).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from rucio_inlet.catalog_models import FileAvailability, ProcessedEvent
from rucio_inlet.catalog_states import RunState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inlet.catalog import open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.runs import FileSpec
from inlet.config import ListenerRoute, Settings
from inlet.lake.lake import Lake
from inlet.listener.dlq import DeadLetterQueue
from inlet.listener.routing import Router
from inlet.listener.rucio_lookup import RucioClientLookup
from inlet.listener.service import Listener
from inlet.messaging import Connection

FILES = 150  # events cover files 0..FILES-1 on two RSEs; the run has FILES + 1 files
RSES = ("S3C", "TAPEC")


def settings_for(lake: Lake, qname: str) -> Settings:
    base = lake.settings
    ls = base.listener.model_copy(
        update={
            "inlet_queue": qname,
            "rucio_queue": qname + ".unused",
            "dlq": qname + ".dlq",
            "consumer": "catchup",
            "s3_rses": [RSES[0]],
            "tape_rses": [RSES[1]],
            "batch_size": 50,
            "routes": [ListenerRoute(handler="catalog", event_types=["transfer-done"])],
            "alarms": base.listener.alarms.model_copy(update={"rule_check_interval": 0}),
        }
    )
    return base.model_copy(update={"listener": ls})


def transfer_done(tag: str, i: int, rse: str) -> str:
    payload = {
        "scope": "catchup",
        "name": f"{tag}_{i:04d}.dat",
        "dst-rse": rse,
        "request-id": f"{tag}-{rse}-{i}",
        "transferred_at": "2026-11-29 10:00:00",
    }
    return json.dumps({"event_type": "transfer-done", "payload": payload, "created_at": "2026-11-29 10:00:01.000000"})


def publish_backlog(s: Settings, qname: str, tag: str) -> int:
    """Every (file, RSE) transfer-done once, and every fifth one again (hermes re-sending it)."""
    frames = (
        (transfer_done(tag, i, rse), {"event_type": "transfer-done"})
        for rse in RSES
        for i in range(FILES)
        for _ in range(2 if i % 5 == 0 else 1)
    )
    # Returns once the broker confirmed the last message (and, in order, all before it).
    with Connection(s.broker, receipt_timeout=120) as conn:
        return conn.send_all(qname, frames)


@pytest.mark.parametrize("listeners", [1, 2])
def test_a_backlog_is_drained_by_competing_listeners_none_lost_none_applied_twice(
    lake: Lake, mariadb_url: str, listeners: int
) -> None:
    tag = uuid.uuid4().hex[:8]
    qname = f"/queue/test.catchup.{tag}"
    s = settings_for(lake, qname)
    cat = open_catalog(mariadb_url)

    def register(session: Session) -> None:
        run = catalog_runs.upsert_run(session, "catchup", 1, scope="catchup", dataset=f"{tag}_raw")
        catalog_runs.add_files(session, run, [FileSpec("catchup", f"{tag}_{i:04d}.dat", 1) for i in range(FILES + 1)])
        catalog_runs.transition(session, run, RunState.CLOSED)
        catalog_runs.transition(session, run, RunState.UPLOADED)

    cat.transaction(register)
    sent = publish_backlog(s, qname, tag)  # the outage: no listener runs while this piles up

    workers = [Listener(s, cat, Router.from_settings(s.listener), RucioClientLookup()) for _ in range(listeners)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 600  # a bound against hanging, not a figure
    while sum(w.handled for w in workers) < sent and time.monotonic() < deadline:
        time.sleep(0.2)
    for w in workers:
        w.stop()
    for t in threads:
        t.join(60)

    assert sum(w.handled for w in workers) == sent, "some messages were never acknowledged"
    with cat.session() as session:
        ledger = session.scalar(
            select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.consumer == "catchup:catalog")
        )
        rows = session.execute(select(FileAvailability.file_id, FileAvailability.rse)).all()
        run = catalog_runs.get_run(session, "catchup", 1)
        assert ledger == FILES * len(RSES)
        assert len(rows) == len(set(rows)) == FILES * len(RSES)
        assert run.state == RunState.UPLOADED and len(run.transitions) == 2
    assert DeadLetterQueue(s.broker, s.listener, timeout=5).letters() == []
    cat.dispose()
