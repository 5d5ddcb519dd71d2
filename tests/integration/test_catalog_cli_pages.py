"""`inlet runs` pages and `inlet reconcile --run` on the lake's catalogue and the real Rucio."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy.orm import Session

from inlet.catalog import open_catalog
from inlet.catalog.runs import FileSpec, RunFiles, add_runs_files, mark_available, mark_file
from inlet.lake.lake import Lake

from .conftest import inlet

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _fill(lake: Lake, exp: str, n: int) -> None:
    """Runs 1..n of ``exp``, each with one file Rucio never saw that the catalogue says is
    registered and on TAPE, and a dataset Rucio lacks: two mismatches per run for reconcile."""
    cat = open_catalog(lake.settings.catalog_url())
    batch = [
        RunFiles(
            exp,
            r,
            [FileSpec("test", f"{exp}.run{r}.ghost.dat", 7, "00000007")],
            {"scope": "test", "dataset": f"{exp}.run{r}"},
        )
        for r in range(1, n + 1)
    ]

    def work(s: Session) -> None:
        add_runs_files(s, batch)
        for r in range(1, n + 1):
            mark_file(s, "test", f"{exp}.run{r}.ghost.dat", registered_at=T0)
            mark_available(s, "test", f"{exp}.run{r}.ghost.dat", "TAPE", T0)

    cat.transaction(work)
    cat.dispose()


def test_runs_pages_through_the_catalogue_each_run_once(lake: Lake, rucio_env: dict[str, str]) -> None:
    exp = f"page{uuid.uuid4().hex[:8]}"
    _fill(lake, exp, 7)
    seen: list[int] = []
    after: list[str] = []
    while True:
        res = inlet(rucio_env, "runs", "--json", "--experiment", exp, "--limit", "3", *after)
        assert res.returncode == 0, res.stderr
        page = json.loads(res.stdout)
        assert all(r["experiment"] == exp and r["files_on"] == {"TAPE": 1} for r in page)
        seen += [r["run_number"] for r in page]
        if len(page) < 3:
            break
        after = ["--after", f"{exp}/{page[-1]['run_number']}"]
    assert seen == list(range(1, 8))
    res = inlet(rucio_env, "runs", "--experiment", exp, "--limit", "3")
    assert res.returncode == 0 and f"inlet runs --after {exp}/3" in res.stderr
    res = inlet(rucio_env, "runs", "--after", "no-run-number")
    assert res.returncode == 2 and "EXPERIMENT/RUN" in res.stderr and "Traceback" not in res.stderr


def test_reconcile_of_one_run_looks_at_that_run_only(lake: Lake, rucio_env: dict[str, str]) -> None:
    exp = f"one{uuid.uuid4().hex[:8]}"
    _fill(lake, exp, 3)
    res = inlet(rucio_env, "reconcile", "--json", "--experiment", exp, "--run", "2")
    assert res.returncode == 1, res.stderr
    found = sorted((m["kind"], m["subject"]) for m in json.loads(res.stdout))
    assert found == [("dataset_missing", f"test:{exp}.run2"), ("missing_in_rucio", f"test:{exp}.run2.ghost.dat")]
    res = inlet(rucio_env, "reconcile", "--experiment", exp, "--run", "99")
    assert res.returncode == 2 and "run 99 of experiment" in res.stderr and "Traceback" not in res.stderr


def test_runs_pages_on_mariadb(mariadb_url: str, rucio_env: dict[str, str]) -> None:
    # The page's range (the OR form of "after this run") on MariaDB, where the year's-scale
    # catalogue lives, and with a state: the (state, experiment, run_number) index of 0003.
    cat = open_catalog(mariadb_url)
    cat.transaction(lambda s: add_runs_files(s, [RunFiles(e, r, []) for e in ("a", "b") for r in (1, 2, 3)]))
    cat.dispose()
    env = {**rucio_env, "INLET_CATALOG__URL": mariadb_url}
    seen: list[tuple[str, int]] = []
    after: list[str] = []
    for _ in range(4):
        res = inlet(env, "runs", "--json", "--state", "recording", "--limit", "4", *after)
        assert res.returncode == 0, res.stderr
        page = [(r["experiment"], r["run_number"]) for r in json.loads(res.stdout)]
        seen += page
        if len(page) < 4:
            break
        after = ["--after", f"{page[-1][0]}/{page[-1][1]}"]
    assert seen == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
