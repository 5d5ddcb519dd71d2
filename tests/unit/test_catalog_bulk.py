"""add_runs_files: the integrity of upsert_run + add_files, for many runs in a few statements."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rucio_inlet.catalog_models import ConditionKey, RunFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inlet.catalog import Catalog, open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.runs import CatalogConflict, FileSpec, RunFiles, add_runs_files


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.db'}")
    yield cat
    cat.dispose()


def entry(run: int, n: int = 3, size: int = 10, **fields: object) -> RunFiles:
    files = [FileSpec("raw", f"run{run}.{i}.dat", size, "0000000a") for i in range(n)]
    return RunFiles("exp", run, files, dict(fields) or None)


def test_bulk_gives_the_counters_fields_and_versions_of_one_run_at_a_time(catalog: Catalog) -> None:
    # Run 1 exists already with one file (its second write must bump its version once).
    catalog.transaction(
        lambda s: catalog_runs.add_files(
            s, catalog_runs.upsert_run(s, "exp", 1), [FileSpec("raw", "run1.0.dat", 10, "0000000a")]
        )
    )
    with catalog.session() as s:
        v1 = catalog_runs.get_run(s, "exp", 1).version
    new = catalog.transaction(
        lambda s: add_runs_files(s, [entry(1, scope="raw", conditions={"stream": "a"}), entry(2, 4, dataset="d2")])
    )
    assert new == 2 + 4  # run1.0.dat was there with the same content: skipped
    with catalog.session() as s:
        r1, r2 = catalog_runs.get_run(s, "exp", 1), catalog_runs.get_run(s, "exp", 2)
        assert (r1.n_files, r1.total_bytes, r1.scope, r1.conditions) == (3, 30, "raw", {"stream": "a"})
        assert (r2.n_files, r2.total_bytes, r2.dataset, r2.version) == (4, 40, "d2", 2)
        assert r1.version == v1 + 1
        assert s.scalar(select(func.count()).select_from(ConditionKey)) == 1
    # The same batch again (a retried upload) changes nothing.
    assert catalog.transaction(lambda s: add_runs_files(s, [entry(1), entry(2, 4)])) == 0
    with catalog.session() as s:
        assert catalog_runs.get_run(s, "exp", 2).n_files == 4


def test_a_conflicting_file_refuses_the_whole_batch(catalog: Catalog) -> None:
    catalog.transaction(lambda s: add_runs_files(s, [entry(1)]))
    with pytest.raises(CatalogConflict, match=r"run1\.0\.dat"):
        catalog.transaction(lambda s: add_runs_files(s, [entry(3), entry(1, size=99)]))
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(RunFile)) == 3
        with pytest.raises(catalog_runs.NotInCatalog):
            catalog_runs.get_run(s, "exp", 3)


def test_bad_input_is_refused_before_anything_is_written(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="listed twice"):
        catalog.transaction(lambda s: add_runs_files(s, [entry(1), entry(1)]))
    with pytest.raises(ValueError, match="condition key"):
        catalog.transaction(lambda s: add_runs_files(s, [entry(1, conditions={"a.b": 1})]))
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(RunFile)) == 0


def test_the_session_sees_the_written_counters_without_reading_them_again(catalog: Catalog) -> None:
    def work(s: Session) -> tuple[int, int, int]:
        add_runs_files(s, [entry(5, 2, dataset="d5")])
        run = catalog_runs.get_run(s, "exp", 5)
        catalog_runs.add_files(s, run, [FileSpec("raw", "run5.extra.dat", 7)])  # the ORM path after the bulk one
        return run.n_files, run.total_bytes, run.version

    assert catalog.transaction(work) == (3, 27, 3)
    with catalog.session() as s:
        run = catalog_runs.get_run(s, "exp", 5)
        assert (run.n_files, run.total_bytes, run.version, run.dataset) == (3, 27, 3, "d5")


def test_a_run_the_session_holds_takes_the_written_values(catalog: Catalog) -> None:
    catalog.transaction(lambda s: add_runs_files(s, [entry(6, 1)]))

    def work(s: Session) -> tuple[int, int, int]:
        run = catalog_runs.get_run(s, "exp", 6)  # loaded before the bulk write
        add_runs_files(s, [entry(6, 3)])  # run6.0.dat again (skipped) and two new files
        return run.n_files, run.total_bytes, run.version

    assert catalog.transaction(work) == (3, 30, 3)


def test_new_runs_and_a_repeated_file_in_one_batch_count_only_the_new_files(catalog: Catalog) -> None:
    # The optimistic INSERT meets run7.0.dat and the batch is written again with the check:
    # the new run 8 must not be written twice, nor run 7's counters count the old file.
    catalog.transaction(lambda s: add_runs_files(s, [entry(7, 1)]))
    assert catalog.transaction(lambda s: add_runs_files(s, [entry(8, 2, scope="raw"), entry(7, 2)])) == 3
    with catalog.session() as s:
        r7, r8 = catalog_runs.get_run(s, "exp", 7), catalog_runs.get_run(s, "exp", 8)
        assert (r7.n_files, r7.total_bytes, r8.n_files, r8.scope, r8.version) == (2, 20, 2, "raw", 2)
        assert s.scalar(select(func.count()).select_from(RunFile)) == 4
