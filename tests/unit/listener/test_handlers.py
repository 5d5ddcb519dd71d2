from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from rucio_inlet.catalog_models import FileAvailability, OutboxMessage
from sqlalchemy import select
from sqlalchemy.orm import Session

from inlet.catalog import Catalog, RunState
from inlet.catalog import runs as catalog_runs
from inlet.config import ListenerSettings
from inlet.listener.events import BadEvent, Event, parse_message
from inlet.listener.handlers.alarms import AlarmHandler
from inlet.listener.handlers.base import HandlerContext
from inlet.listener.handlers.catalog import CatalogHandler
from inlet.listener.handlers.release import ReleaseHandler
from tests.unit.listener.conftest import FakeRucio

SETTINGS = ListenerSettings()


def event(event_type: str, created_at: str = "2026-11-21T10:00:00", **payload: Any) -> Event:
    body = {"event_type": event_type, "payload": payload, "created_at": created_at}
    return parse_message(json.dumps(body).encode(), {}, 10_000)


def uploaded_run(session: Session, n_files: int = 2) -> None:
    run = catalog_runs.upsert_run(session, "cygno", 42, scope="cygno", dataset="run42_raw")
    for i in range(n_files):
        catalog_runs.add_file(session, run, "cygno", f"run42_{i}.dat", 10)
    catalog_runs.transition(session, run, RunState.CLOSED)
    catalog_runs.transition(session, run, RunState.UPLOADED)


def apply(catalog: Catalog, handler: Any, ev: Event, rucio: FakeRucio) -> None:
    def work(session: Session) -> None:
        handler.handle(ev, HandlerContext(session, SETTINGS, rucio, logging.getLogger("t")))

    catalog.transaction(work)


def state(catalog: Catalog) -> RunState:
    with catalog.session() as s:
        return catalog_runs.get_run(s, "cygno", 42).state


def test_transfer_done_per_file_then_the_run_moves_to_on_s3_at_the_last_copy(
    catalog: Catalog, rucio: FakeRucio
) -> None:
    catalog.transaction(uploaded_run)
    h = CatalogHandler(SETTINGS, {})
    td = {"scope": "cygno", "dst-rse": "S3", "transferred_at": "2026-11-21 10:05:00"}
    apply(catalog, h, event("transfer-done", name="run42_0.dat", **td), rucio)
    assert state(catalog) == RunState.UPLOADED
    apply(
        catalog, h, event("transfer-done", name="run42_1.dat", **{**td, "transferred_at": "2026-11-21 10:07:00"}), rucio
    )
    assert state(catalog) == RunState.ON_S3
    with catalog.session() as s:
        times = sorted(a.available_at.minute for a in s.scalars(select(FileAvailability)))
        run = catalog_runs.get_run(s, "cygno", 42)
        assert times == [5, 7]
        assert run.state_changed_at.minute == 7
        assert run.transitions[-1].reason == "all 2 files on S3"


def test_datasetlock_ok_on_tape_after_s3_moves_to_on_tape(catalog: Catalog, rucio: FakeRucio) -> None:
    catalog.transaction(uploaded_run)
    h = CatalogHandler(SETTINGS, {})
    apply(catalog, h, event("datasetlock_ok", scope="cygno", name="run42_raw", rse="S3", rule_id="r1"), rucio)
    apply(catalog, h, event("datasetlock_ok", scope="cygno", name="run42_raw", rse="TAPE", rule_id="r2"), rucio)
    assert state(catalog) == RunState.ON_TAPE
    # A late S3 event for a run already on tape changes nothing and is not an error.
    apply(catalog, h, event("datasetlock_ok", scope="cygno", name="run42_raw", rse="S3", rule_id="r1"), rucio)
    assert state(catalog) == RunState.ON_TAPE


def test_tape_before_s3_keeps_the_times_and_catches_up(catalog: Catalog, rucio: FakeRucio) -> None:
    catalog.transaction(uploaded_run)
    h = CatalogHandler(SETTINGS, {})
    apply(catalog, h, event("datasetlock_ok", scope="cygno", name="run42_raw", rse="TAPE", rule_id="r2"), rucio)
    assert state(catalog) == RunState.UPLOADED
    apply(catalog, h, event("datasetlock_ok", scope="cygno", name="run42_raw", rse="S3", rule_id="r1"), rucio)
    assert state(catalog) == RunState.ON_TAPE


def test_rule_ok_asks_rucio_for_the_rules_rses(catalog: Catalog, rucio: FakeRucio) -> None:
    catalog.transaction(uploaded_run)
    rucio.rules["r9"] = ["S3"]
    apply(catalog, CatalogHandler(SETTINGS, {}), event("rule_ok", scope="cygno", name="run42_raw", rule_id="r9"), rucio)
    assert state(catalog) == RunState.ON_S3


def test_events_about_unknown_dids_or_other_rses_change_nothing(catalog: Catalog, rucio: FakeRucio) -> None:
    catalog.transaction(uploaded_run)
    h = CatalogHandler(SETTINGS, {})
    apply(catalog, h, event("transfer-done", scope="cygno", name="other.dat", **{"dst-rse": "S3"}), rucio)
    apply(catalog, h, event("transfer-done", scope="cygno", name="run42_0.dat", **{"dst-rse": "SITE_B_DISK"}), rucio)
    apply(catalog, h, event("rule_ok", scope="x", name="y", rule_id="unknown-to-rucio-too"), rucio)
    with catalog.session() as s:
        assert s.scalars(select(FileAvailability)).all() == []


def test_a_transfer_done_without_its_rse_is_a_bad_event(catalog: Catalog, rucio: FakeRucio) -> None:
    with pytest.raises(BadEvent, match=r"lacks payload field\(s\) dst-rse"):
        apply(catalog, CatalogHandler(SETTINGS, {}), event("transfer-done", scope="c", name="n"), rucio)


def test_release_signals_a_file_once_all_its_rules_are_ok(catalog: Catalog, rucio: FakeRucio) -> None:
    h = ReleaseHandler(SETTINGS, {})
    rucio.contents[("cygno", "run42_raw")] = [("cygno", "a.dat"), ("cygno", "b.dat")]
    rucio.file_rules[("cygno", "a.dat")] = {"r1": "OK", "r2": "OK"}
    rucio.file_rules[("cygno", "b.dat")] = {"r1": "OK", "r2": "REPLICATING"}
    ev = event("rule_ok", scope="cygno", name="run42_raw", rule_id="r2")
    apply(catalog, h, ev, rucio)
    apply(catalog, h, ev, rucio)  # a repeated signal is queued once
    with catalog.session() as s:
        (msg,) = s.scalars(select(OutboxMessage)).all()
    assert msg.kind == "inlet-event" and msg.idempotency_key == "daq-release:cygno:a.dat"
    assert msg.payload["event_type"] == "daq-release" and msg.payload["id"] == "daq-release:cygno:a.dat"
    assert msg.payload["payload"] == {"scope": "cygno", "name": "a.dat", "rules": ["r1", "r2"]}


def test_alarms_for_the_same_failure_are_queued_once_per_window(catalog: Catalog, rucio: FakeRucio) -> None:
    h = AlarmHandler(SETTINGS, {})
    fail = {"scope": "cygno", "name": "a.dat", "dst-rse": "S3", "reason": "CHECKSUM MISMATCH"}
    apply(catalog, h, event("transfer-failed", **fail), rucio)
    apply(catalog, h, event("transfer-failed", created_at="2026-11-21T11:00:00", **fail), rucio)
    apply(catalog, h, event("transfer-failed", **{**fail, "name": "b.dat"}), rucio)
    with catalog.session() as s:
        texts = [m.payload["text"] for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert len(texts) == 2
    assert "transfer of cygno:a.dat to S3 failed" in texts[0] and "CHECKSUM MISMATCH" in texts[0]


def test_a_forged_transfer_done_does_not_move_the_run_until_rucio_agrees(catalog: Catalog, rucio: FakeRucio) -> None:
    catalog.transaction(uploaded_run)
    h = CatalogHandler(SETTINGS, {})
    apply(catalog, h, event("datasetlock_ok", scope="cygno", name="run42_raw", rse="S3", rule_id="r1"), rucio)
    assert state(catalog) == RunState.ON_S3
    # Well-formed events saying both files are on tape, while Rucio has one of them there only.
    rucio.not_available.add(("TAPE", "cygno", "run42_1.dat"))
    for name in ("run42_0.dat", "run42_1.dat"):
        apply(catalog, h, event("transfer-done", scope="cygno", name=name, **{"dst-rse": "TAPE"}), rucio)
    assert state(catalog) == RunState.ON_S3
    # Once Rucio lists the replica, the real event moves the run.
    rucio.not_available.clear()
    apply(catalog, h, event("transfer-done", scope="cygno", name="run42_1.dat", **{"dst-rse": "TAPE", "x": 1}), rucio)
    assert state(catalog) == RunState.ON_TAPE
