"""The run catalogue on the lake's real MariaDB: migrations, and parallel writers that must
not lose updates (uploader workers and listener instances share runs and events)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from rucio_inlet.catalog_models import Base, FileAvailability, OutboxMessage, Run, RunTransition
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from inlet.catalog import Catalog, IllegalTransition, RunState, open_catalog
from inlet.catalog.db import VERSION_TABLE, current_revision, downgrade, head_revision
from inlet.catalog.ledger import claim_event, drain, enqueue
from inlet.catalog.runs import add_file, get_run, mark_available, transition, upsert_run

N_THREADS = 8


@pytest.fixture
def catalog(mariadb_url: str) -> Iterator[Catalog]:
    cat = open_catalog(mariadb_url, pool_size=N_THREADS + 2)
    yield cat
    cat.dispose()


def _in_parallel(n: int, fn: Callable[[int], None]) -> list[BaseException]:
    """Run fn(0..n-1) in threads released together; return what they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        barrier.wait()
        try:
            fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_migrations_match_the_models_on_mariadb(mariadb_url: str) -> None:
    cat = open_catalog(mariadb_url)
    assert current_revision(cat.engine) == head_revision()
    with cat.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": False})
        assert compare_metadata(ctx, Base.metadata) == []
    assert inspect(cat.engine).get_columns("runs")[0]["name"] == "id"
    downgrade(mariadb_url, "base")
    assert set(inspect(cat.engine).get_table_names()) == {VERSION_TABLE}
    cat.dispose()


def test_microseconds_survive_mariadb(catalog: Catalog) -> None:
    import datetime as dt

    t = dt.datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=dt.UTC)
    with catalog.session() as s:
        upsert_run(s, "cygno", 1, start_time=t)
    with catalog.session() as s:
        assert get_run(s, "cygno", 1).start_time == t


def test_parallel_file_adds_lose_no_counter_update(catalog: Catalog) -> None:
    with catalog.session() as s:
        upsert_run(s, "cygno", 100)
    per_thread = 20

    def worker(i: int) -> None:
        for j in range(per_thread):

            def work(s: Session, j: int = j) -> None:
                add_file(s, get_run(s, "cygno", 100), "raw", f"t{i}-f{j}", 1000 + i)

            catalog.transaction(work)

    assert _in_parallel(N_THREADS, worker) == []
    with catalog.session() as s:
        run = get_run(s, "cygno", 100)
        assert run.n_files == N_THREADS * per_thread
        assert run.total_bytes == sum((1000 + i) * per_thread for i in range(N_THREADS))


def test_parallel_first_files_create_the_run_once(catalog: Catalog) -> None:
    def worker(i: int) -> None:
        def work(s: Session) -> None:
            run = upsert_run(s, "cygno", 200, conditions={f"k{i}": i})
            add_file(s, run, "raw", f"first-{i}", 1)

        catalog.transaction(work)

    assert _in_parallel(N_THREADS, worker) == []
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
        run = get_run(s, "cygno", 200)
        assert run.n_files == N_THREADS
        assert run.conditions == {f"k{i}": i for i in range(N_THREADS)}


def test_racing_transitions_exactly_one_wins(catalog: Catalog) -> None:
    with catalog.session() as s:
        transition(s, upsert_run(s, "cygno", 300), RunState.CLOSED)

    def worker(_i: int) -> None:
        catalog.transaction(lambda s: transition(s, get_run(s, "cygno", 300), RunState.UPLOADED))

    errors = _in_parallel(N_THREADS, worker)
    assert len(errors) == N_THREADS - 1
    assert all(isinstance(e, IllegalTransition) and "UPLOADED → UPLOADED" in str(e) for e in errors)
    with catalog.session() as s:
        assert get_run(s, "cygno", 300).state is RunState.UPLOADED
        assert s.scalar(select(func.count()).select_from(RunTransition)) == 2


def test_stale_version_is_refused_not_overwritten(catalog: Catalog) -> None:
    """Optimistic versioning: a writer that did not lock cannot overwrite a newer row."""
    with catalog.session() as s:
        upsert_run(s, "cygno", 400, run_type="physics")
    with catalog.sessions() as s1, catalog.sessions() as s2:
        r1 = get_run(s1, "cygno", 400)
        r2 = get_run(s2, "cygno", 400)
        r1.run_type = "cosmics"
        s1.commit()
        r2.run_type = "pedestal"
        with pytest.raises(StaleDataError):
            s2.commit()
    with catalog.session() as s:
        assert get_run(s, "cygno", 400).run_type == "cosmics"


def test_redelivered_event_has_its_effect_once(catalog: Catalog) -> None:
    """Listener instances receiving the same message at once: one effect, one ledger row."""
    with catalog.session() as s:
        run = upsert_run(s, "cygno", 500)
        add_file(s, run, "raw", "f", 1)
    effects: list[int] = []

    def worker(i: int) -> None:
        def work(s: Session) -> None:
            if claim_event(s, "listener", "ID:broker-1:42/transfer-done/req-7", "transfer-done"):
                mark_available(s, "raw", "f", "S3")
                enqueue(s, "celery", {"run": 500}, "reco/cygno/500")
                effects.append(i)

        catalog.transaction(work)

    assert _in_parallel(N_THREADS, worker) == []
    assert len(effects) == 1
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(FileAvailability)) == 1
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_parallel_drainers_send_each_message_once(catalog: Catalog) -> None:
    with catalog.session() as s:
        for k in range(40):
            enqueue(s, "celery", {"k": k}, f"key-{k}")
    sent: list[str] = []
    lock = threading.Lock()

    def send(msg: OutboxMessage) -> None:
        with lock:
            sent.append(msg.idempotency_key)

    def worker(_i: int) -> None:
        while drain(catalog, send, limit=5):
            pass

    assert _in_parallel(4, worker) == []
    assert sorted(sent) == sorted(f"key-{k}" for k in range(40))


def test_services_starting_together_migrate_an_empty_database_once(mariadb_url: str) -> None:
    """Uploader workers and listeners all call open_catalog() at start; on an empty database
    they must not race to create the same tables."""
    opened: list[Catalog] = []

    def start(_i: int) -> None:
        opened.append(open_catalog(mariadb_url))

    errors = _in_parallel(4, start)
    try:
        assert not errors, errors
        assert len(opened) == 4
        assert current_revision(opened[0].engine) == head_revision()
    finally:
        for cat in opened:
            cat.dispose()


def test_bulk_writes_on_mariadb_keep_counters_versions_and_refuse_conflicts(catalog: Catalog) -> None:
    from inlet.catalog.runs import CatalogConflict, FileSpec, RunFiles, add_files, add_runs_files

    def files(run: int, n: int, size: int = 10) -> list[FileSpec]:
        return [FileSpec("bulk", f"r{run}.{i}", size, "0000000a") for i in range(n)]

    catalog.transaction(lambda s: add_files(s, upsert_run(s, "bulk", 1), files(1, 1)))
    with catalog.session() as s:
        v1 = get_run(s, "bulk", 1).version
    new = catalog.transaction(
        lambda s: add_runs_files(
            s, [RunFiles("bulk", 1, files(1, 3), {"conditions": {"beam": 1}}), RunFiles("bulk", 2, files(2, 4))]
        )
    )
    assert new == 2 + 4
    with catalog.session() as s:
        r1, r2 = get_run(s, "bulk", 1), get_run(s, "bulk", 2)
        assert (r1.n_files, r1.total_bytes, r1.conditions, r1.version) == (3, 30, {"beam": 1}, v1 + 1)
        assert (r2.n_files, r2.total_bytes, r2.version, r2.state) == (4, 40, 2, RunState.RECORDING)
    with pytest.raises(CatalogConflict):
        catalog.transaction(
            lambda s: add_runs_files(s, [RunFiles("bulk", 3, files(3, 1)), RunFiles("bulk", 2, files(2, 1, 99))])
        )
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Run).where(Run.experiment == "bulk")) == 2
        assert get_run(s, "bulk", 2).n_files == 4
