"""The catalogue API on SQLite (MariaDB: tests/integration/test_catalog_mariadb.py)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from rucio_inlet.catalog_models import Base, OutboxMessage, Run, RunTransition
from sqlalchemy import inspect, select

from inlet.catalog import Catalog, IllegalTransition, RunState, open_catalog
from inlet.catalog.db import VERSION_TABLE, current_revision, downgrade, head_revision, upgrade
from inlet.catalog.ledger import claim_event, drain, enqueue
from inlet.catalog.runs import (
    CatalogConflict,
    NotInCatalog,
    add_file,
    files_on,
    get_file,
    get_run,
    mark_available,
    mark_file,
    transition,
    upsert_run,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def test_migrations_produce_exactly_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cat = open_catalog(url)
    with cat.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, Base.metadata) == []
    assert current_revision(cat.engine) == head_revision()
    upgrade(url)  # idempotent
    downgrade(url, "base")
    assert set(inspect(cat.engine).get_table_names()) == {VERSION_TABLE}
    cat.dispose()


def test_upgrade_of_unreachable_database_names_the_fix() -> None:
    from inlet.catalog.db import CatalogError

    with pytest.raises(CatalogError, match="INLET_CATALOG__URL"):
        upgrade("sqlite:////proc/version/catalog.db")


def test_run_and_files_round_trip(catalog: Catalog) -> None:
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 5000, run_type="physics", start_time=T0, conditions={"stream": "ksl"})
        add_file(s, run, "raw", "run05000.0.mid.gz", 100, adler32="0A0B0C0D", closed_at=T0)
        add_file(s, run, "raw", "run05000.1.mid.gz", 50, adler32="01020304")
    with catalog.session() as s:
        run = get_run(s, "cygno", 5000)
        assert (run.n_files, run.total_bytes, run.state) == (2, 150, RunState.RECORDING)
        assert run.start_time == T0 and run.start_time.tzinfo is not None
        assert run.conditions == {"stream": "ksl"}
        f = get_file(s, "raw", "run05000.0.mid.gz")
        assert f.adler32 == "0a0b0c0d" and f.closed_at == T0 and f.did == "raw:run05000.0.mid.gz"


def test_upsert_merges_conditions_and_keeps_unset_fields(catalog: Catalog) -> None:
    with catalog.session() as s:
        upsert_run(s, "cygno", 1, run_type="pedestal", conditions={"hv": 420})
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 1, conditions={"stream": "ksl"})
        assert run.run_type == "pedestal"
        assert run.conditions == {"hv": 420, "stream": "ksl"}


def test_condition_keys_that_rucio_cannot_filter_on_are_refused(catalog: Catalog) -> None:
    with catalog.session() as s, pytest.raises(ValueError, match="'beam_energy'"):
        upsert_run(s, "cygno", 1, conditions={"beam.energy": 1})
    with catalog.session() as s:
        assert s.scalars(select(Run)).all() == []


def test_adding_same_file_twice_is_a_no_op_but_other_content_is_refused(catalog: Catalog) -> None:
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 2)
        add_file(s, run, "raw", "f1", 10, adler32="00000001")
        add_file(s, run, "raw", "f1", 10, adler32="00000001")
    with catalog.session() as s:
        run = get_run(s, "cygno", 2)
        assert run.n_files == 1
        with pytest.raises(CatalogConflict, match="give the new file a new name"):
            add_file(s, run, "raw", "f1", 11, adler32="00000001")


def test_bad_checksum_and_size_are_refused(catalog: Catalog) -> None:
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 3)
        with pytest.raises(ValueError, match="8 hex digits"):
            add_file(s, run, "raw", "f", 1, adler32="xyz")
        with pytest.raises(ValueError, match="negative size"):
            add_file(s, run, "raw", "f", -1)


def test_naive_datetimes_are_refused(catalog: Catalog) -> None:
    with pytest.raises(Exception, match="pass an aware datetime"), catalog.session() as s:
        upsert_run(s, "cygno", 4, start_time=dt.datetime(2026, 1, 1))


def test_lifecycle_with_audit_trail(catalog: Catalog) -> None:
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 10)
        for state in (RunState.CLOSED, RunState.UPLOADED, RunState.S3_FAILED, RunState.ON_S3):
            transition(s, run, state, reason=f"to {state}")
    with catalog.session() as s:
        run = get_run(s, "cygno", 10)
        assert run.state is RunState.ON_S3
        trail = [(t.from_state, t.to_state) for t in run.transitions]
        assert trail == [
            ("RECORDING", "CLOSED"),
            ("CLOSED", "UPLOADED"),
            ("UPLOADED", "S3_FAILED"),
            ("S3_FAILED", "ON_S3"),
        ]


def test_illegal_transition_changes_nothing(catalog: Catalog) -> None:
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 11)
        transition(s, run, RunState.CLOSED)
    with catalog.session() as s:
        run = get_run(s, "cygno", 11)
        with pytest.raises(IllegalTransition, match="CLOSED → ON_TAPE"):
            transition(s, run, RunState.ON_TAPE)
        assert run.state is RunState.CLOSED
    with catalog.session() as s:
        run = get_run(s, "cygno", 11)
        assert run.state is RunState.CLOSED
        assert len(s.scalars(select(RunTransition)).all()) == 1
        assert run.version == 2


def test_file_times_first_report_wins_and_availability_is_per_rse(catalog: Catalog) -> None:
    t1 = T0 + dt.timedelta(minutes=1)
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 12)
        add_file(s, run, "raw", "a", 1)
        mark_file(s, "raw", "a", uploaded_at=T0)
        mark_file(s, "raw", "a", uploaded_at=t1, registered_at=t1)
        assert mark_available(s, "raw", "a", "S3", T0) is True
        assert mark_available(s, "raw", "a", "S3", t1) is False
        assert mark_available(s, "raw", "a", "TAPE", t1) is True
    with catalog.session() as s:
        f = get_file(s, "raw", "a")
        assert (f.uploaded_at, f.registered_at) == (T0, t1)
        assert [(a.rse, a.available_at) for a in f.availability] == [("S3", T0), ("TAPE", t1)]
        assert files_on(s, f.run, "S3") == 1
        with pytest.raises(NotInCatalog, match="raw:nope"):
            mark_available(s, "raw", "nope", "S3")


def test_ledger_recognises_a_redelivery(catalog: Catalog) -> None:
    with catalog.session() as s:
        assert claim_event(s, "listener", "msg-1/rule-9", "rule_ok") is True
    with catalog.session() as s:
        assert claim_event(s, "listener", "msg-1/rule-9", "rule_ok") is False
        assert claim_event(s, "other-consumer", "msg-1/rule-9") is True


def test_ledger_row_rolls_back_with_the_effects(catalog: Catalog) -> None:
    def fail_after_claim() -> None:
        with catalog.session() as s:
            assert claim_event(s, "listener", "m2")
            raise RuntimeError("effect failed")

    with pytest.raises(RuntimeError):
        fail_after_claim()
    with catalog.session() as s:
        assert claim_event(s, "listener", "m2") is True


def test_outbox_sends_after_commit_once_and_keeps_failures(catalog: Catalog) -> None:
    with catalog.session() as s:
        assert enqueue(s, "celery", {"task": "reco", "run": 1}, "reco/cygno/1")
        assert not enqueue(s, "celery", {"task": "reco", "run": 1}, "reco/cygno/1")
        enqueue(s, "webhook", {"x": 1}, "hook/1")
    sent: list[str] = []

    def send(msg: OutboxMessage) -> None:
        if msg.kind == "webhook":
            raise ConnectionError("receiver down")
        sent.append(msg.idempotency_key)

    assert drain(catalog, send) == 1
    assert drain(catalog, send) == 0
    assert sent == ["reco/cygno/1"]
    with catalog.session() as s:
        hook = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).one()
        assert hook.sent_at is None and hook.attempts == 2 and "receiver down" in (hook.last_error or "")


def test_parallel_writers_on_sqlite_lose_no_update(catalog: Catalog) -> None:
    """Threads adding files to one run: the counters end exact (version check + retries)."""
    with catalog.session() as s:
        upsert_run(s, "cygno", 99)
    n_threads, per_thread = 4, 15

    def worker(i: int) -> None:
        for j in range(per_thread):

            def work(s: object, j: int = j) -> None:
                from sqlalchemy.orm import Session

                assert isinstance(s, Session)
                run = get_run(s, "cygno", 99)
                add_file(s, run, "raw", f"w{i}-{j}", 3)

            catalog.transaction(work)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with catalog.session() as s:
        run = get_run(s, "cygno", 99)
        assert run.n_files == n_threads * per_thread
        assert run.total_bytes == 3 * n_threads * per_thread
