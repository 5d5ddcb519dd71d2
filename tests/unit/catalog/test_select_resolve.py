"""Selections evaluated against a real (SQLite) catalogue, and `inlet select` / `inlet runs`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.catalog import Catalog, RunState, open_catalog
from inlet.catalog.runs import add_file, get_run, mark_available, transition, upsert_run
from inlet.cli.main import app
from inlet.cli.runs_cmd import parse_since
from inlet.select.grammar import SelectSyntaxError
from inlet.select.resolve import group_by_dataset, select_files

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalog]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("INLET_CATALOG__URL", url)
    cat = open_catalog(url)
    with cat.session() as s:
        for n, (exp, scope, rtype, cond) in enumerate(
            [
                ("kloe", "kloe.raw", "physics", {"stream": "ksl", "beam": 510.0}),
                ("kloe", "kloe.raw", "physics", {"stream": "kpm", "beam": 510.0}),
                ("kloe", "kloe.raw", "cosmics", {"stream": "ksl", "beam": 0.0}),
                ("cygno", "raw", "physics", {"stream": "ksl", "hv": 420}),
            ]
        ):
            number = 5000 + n
            run = upsert_run(
                s,
                exp,
                number,
                run_type=rtype,
                conditions=cond,
                scope=scope,
                dataset=f"run{number}",
                start_time=T0 + dt.timedelta(days=n),
            )
            for i in range(2):
                add_file(s, run, scope, f"run{number}.f{i}", 10 * (i + 1), adler32="0000000a")
        mark_available(s, "kloe.raw", "run5000.f0", "TAPE", T0)
        mark_available(s, "kloe.raw", "run5000.f0", "SITE_A_DISK", T0)
        mark_available(s, "kloe.raw", "run5000.f1", "TAPE", T0)
        run = get_run(s, "kloe", 5000)
        transition(s, run, RunState.CLOSED)
    yield cat
    cat.dispose()


def names(cat: Catalog, text: str) -> list[str]:
    with cat.session() as s:
        return [f.did for f in select_files(s, text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("raw:(run_number=5000) and (stream='ksl')", ["kloe.raw:run5000.f0", "kloe.raw:run5000.f1"]),
        ("cygno.raw: run_nr=5003", []),  # the tier is a scope, not an experiment
        ("raw: run_nr=5003", ["raw:run5003.f0", "raw:run5003.f1"]),
        ("kloe.raw: stream='ksl' and run_type=cosmics", ["kloe.raw:run5002.f0", "kloe.raw:run5002.f1"]),
        (
            "*: beam < 1 or hv >= 400",
            ["raw:run5003.f0", "raw:run5003.f1", "kloe.raw:run5002.f0", "kloe.raw:run5002.f1"],
        ),
        ("*: size > 10 and run in (5000, 5001)", ["kloe.raw:run5000.f1", "kloe.raw:run5001.f1"]),
        ("*: rse = TAPE and not rse = SITE_A_DISK", ["kloe.raw:run5000.f1"]),
        ("*: name = '*5001.f*'", ["kloe.raw:run5001.f0", "kloe.raw:run5001.f1"]),
        ("*: run_state = closed", ["kloe.raw:run5000.f0", "kloe.raw:run5000.f1"]),
        ("*: run_start > '2026-11-03' and run between 5000 and 5999", ["raw:run5003.f0", "raw:run5003.f1"]),
        ("*: run_start >= '2026-11-03T00:00:00Z' and run_type=cosmics", ["kloe.raw:run5002.f0", "kloe.raw:run5002.f1"]),
        ("*: experiment = cygno", ["raw:run5003.f0", "raw:run5003.f1"]),
    ],
)
def test_selection_table(filled: Catalog, text: str, expected: list[str]) -> None:
    assert names(filled, text) == expected


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("*: run_state = BOGUS", 3, "valid states"),
        ("*: a=1 and run = 'five'", 11, "whole number"),
        ("*: run_start > 'soon'", 3, "ISO 8601"),
        ("*: name > 'r*'", 3, "wildcard"),
        ("*: rse > TAPE", 3, "rse takes = or !="),
    ],
)
def test_evaluation_errors_have_positions(filled: Catalog, text: str, pos: int, message: str) -> None:
    with pytest.raises(SelectSyntaxError) as err, filled.session() as s:
        select_files(s, text)
    assert err.value.pos == pos and message in err.value.message


def test_replicas_and_grouping(filled: Catalog) -> None:
    with filled.session() as s:
        files = select_files(s, "raw: run=5000")
    assert files[0].replicas == {"TAPE": "2026-11-01T00:00:00Z", "SITE_A_DISK": "2026-11-01T00:00:00Z"}
    assert list(group_by_dataset(files)) == [("kloe.raw", "run5000")]


def test_cli_select_json_and_error(filled: Catalog) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["select", "raw: run=5001", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [f["did"] for f in out] == ["kloe.raw:run5001.f0", "kloe.raw:run5001.f1"]
    assert out[0]["adler32"] == "0000000a" and out[0]["run_number"] == 5001
    res = runner.invoke(app, ["select", "raw: run=="])
    assert res.exit_code == 2
    assert "expected a value" in res.output and "column 11" in res.output


def test_cli_fetch_refuses_a_bad_selection_before_any_rucio_call(filled: Catalog, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    res = CliRunner().invoke(app, ["fetch", "test: experiment = ", "--to", str(dest)])
    assert res.exit_code == 2
    assert "expected a value" in res.output and "column 20" in res.output
    assert not dest.exists()


def test_cli_runs_state_and_since(filled: Catalog) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["runs", "--json", "--state", "closed"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["experiment"], r["run_number"], r["state"]) for r in rows] == [("kloe", 5000, "CLOSED")]
    assert rows[0]["files_on"] == {"TAPE": 2, "SITE_A_DISK": 1}
    res = runner.invoke(app, ["runs", "--json", "--since", "2026-11-03"])
    assert [r["run_number"] for r in json.loads(res.stdout)] == [5003, 5002]  # cygno, then kloe
    res = runner.invoke(app, ["runs", "--state", "ONS3"])
    assert res.exit_code == 2 and "valid states" in res.output


def test_cli_runs_pages_by_keyset(filled: Catalog) -> None:
    runner = CliRunner()
    seen: list[tuple[str, int]] = []
    after: list[str] = []
    for _ in range(3):
        res = runner.invoke(app, ["runs", "--json", "--limit", "3", *after])
        assert res.exit_code == 0, res.output
        page = [(r["experiment"], r["run_number"]) for r in json.loads(res.stdout)]
        seen += page
        if len(page) < 3:
            break
        after = ["--after", f"{page[-1][0]}/{page[-1][1]}"]
    assert seen == [("cygno", 5003), ("kloe", 5000), ("kloe", 5001), ("kloe", 5002)]  # each run once, in order
    res = runner.invoke(app, ["runs", "--json", "--limit", "1", "--after", "kloe/5000", "--state", "recording"])
    assert [r["run_number"] for r in json.loads(res.stdout)] == [5001]  # a filter and a page together
    res = runner.invoke(app, ["runs", "--limit", "2"])
    assert res.exit_code == 0 and "inlet runs --after kloe/5000" in res.output  # says how to get the next page
    res = runner.invoke(app, ["runs", "--after", "5000"])
    assert res.exit_code == 2 and "EXPERIMENT/RUN" in res.output


def test_parse_since() -> None:
    now = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    assert parse_since("2d", now) == now - dt.timedelta(days=2)
    assert parse_since("30m", now) == now - dt.timedelta(minutes=30)
    assert parse_since("2026-11-01") == T0
    with pytest.raises(ValueError, match="2d, 12h, 30m"):
        parse_since("yesterday")
