"""The run-metadata plugin inside the real Rucio server, used through the standard client
and the plain `rucio` CLI: keys from the catalogue, filters, the two-plugin rule, writes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inlet.catalog import Catalog, open_catalog
from inlet.catalog.runs import add_file, upsert_run
from inlet.lake.lake import Lake
from tests.integration.conftest import python_child

SCOPE = "test"
RUCIO = str(Path(sys.executable).parent / "rucio")

# Runs in a child process: Rucio's client reads RUCIO_CONFIG once, at import.
CLIENT = r"""
import json, sys
from rucio.client import Client
from rucio.common.exception import RucioException
c = Client()
out = {}
for step in json.loads(sys.stdin.read()):
    op, args = step[0], step[1:]
    try:
        if op == "register":
            scope, dataset, files = args
            c.add_replicas(rse="SITE_A_DISK", files=[
                {"scope": scope, "name": n, "bytes": 1, "adler32": "00000001"} for n in files])
            c.add_dataset(scope, dataset)
            c.attach_dids(scope, dataset, [{"scope": scope, "name": n} for n in files])
            res = "ok"
        elif op == "meta":
            res = c.get_metadata(args[0], args[1], plugin=args[2])
        elif op == "list":
            res = sorted(c.list_dids(args[0], filters=args[1], did_type=args[2]))
        elif op == "set":
            c.set_metadata(*args)
            res = "ok"
        else:
            raise ValueError(op)
    except RucioException as exc:
        res = {"error": type(exc).__name__, "message": str(exc)}
    out[str(len(out))] = res
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def catalog(lake: Lake) -> Iterator[Catalog]:
    cat = open_catalog(lake.settings.catalog_url())
    yield cat
    cat.dispose()


def client(rucio_env: dict[str, str], *steps: list[Any]) -> list[Any]:
    out = json.loads(python_child(rucio_env, CLIENT, stdin=json.dumps(steps)))
    return [out[str(i)] for i in range(len(steps))]


@pytest.fixture(scope="module")
def runs(catalog: Catalog, rucio_env: dict[str, str]) -> dict[str, Any]:
    """Three runs of a fresh experiment name, their files registered in Rucio and catalogue."""
    tag = uuid.uuid4().hex[:8]
    exp = f"kloe{tag}"
    base = 5000
    names: dict[int, list[str]] = {}
    steps: list[list[Any]] = []
    specs = [
        (base, "physics", {"stream": "ksl", "beam": 510.0}),
        (base + 1, "physics", {"stream": "kpm", "beam": 510.0}),
        (base + 2, "cosmics", {"stream": "ksl", "beam": 0.0}),
    ]
    with catalog.session() as s:
        for number, run_type, cond in specs:
            dataset = f"{exp}.run{number}"
            run = upsert_run(
                s,
                exp,
                number,
                run_type=run_type,
                conditions=cond,
                scope=SCOPE,
                dataset=dataset,
                start_time=dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(hours=number - base),
            )
            names[number] = [f"{exp}.run{number}.f{i}" for i in range(2)]
            for n in names[number]:
                add_file(s, run, SCOPE, n, 1, adler32="00000001")
            steps.append(["register", SCOPE, dataset, names[number]])
        # In the catalogue but not (yet) in Rucio: must never be listed.
        add_file(s, run, SCOPE, f"{exp}.unregistered", 1)
    assert client(rucio_env, *steps) == ["ok"] * len(specs)
    return {"exp": exp, "base": base, "names": names}


@pytest.fixture(scope="module")
def answers(runs: dict[str, Any], rucio_env: dict[str, str]) -> dict[str, Any]:
    """Every client call of this module in one child process (a Rucio import costs seconds)."""
    exp, base, names = runs["exp"], runs["base"], runs["names"]
    f0, f1 = names[base][0], names[base][1]
    stranger = f"{exp}.not-in-catalogue"
    name = f"{exp}*"
    steps: dict[str, list[Any]] = {
        "meta_all": ["meta", SCOPE, f0, "ALL"],
        "meta_ours": ["meta", SCOPE, f0, "INLET_RUNS"],
        "meta_dataset": ["meta", SCOPE, f"{exp}.run{base}", "INLET_RUNS"],
        "files_eq": ["list", SCOPE, [{"name": name, "run_nr": base, "stream": "ksl"}], "file"],
        "ds_range": ["list", SCOPE, [{"name": name, "run_nr.gte": base, "run_nr.lt": base + 2}], "dataset"],
        "ds_or": ["list", SCOPE, [{"name": name, "run_type": "cosmics"}, {"name": name, "stream": "kpm"}], "dataset"],
        "files_ne_lte": ["list", SCOPE, [{"name": name, "run_type.ne": "physics", "beam.lte": 1}], "file"],
        "all_types": ["list", SCOPE, [{"name": name, "run_nr": base + 2}], "all"],
        "with_rse": ["list", SCOPE, [{"name": name, "run_nr": base, "rse": "SITE_A_DISK"}], "file"],
        "mixed": ["list", SCOPE, [{"name": name, "run_number": base, "run_type": "physics"}], "dataset"],
        "ours_only": ["list", SCOPE, [{"name": name, "run_nr": base, "run_type": "physics"}], "dataset"],
        "set_same": ["set", SCOPE, f1, "run_type", "physics"],
        "set_other": ["set", SCOPE, f1, "run_type", "cosmics"],
        "register_stranger": ["register", SCOPE, f"{stranger}.ds", [stranger]],
        "set_stranger": ["set", SCOPE, stranger, "run_type", "calib"],
        "stranger_json": ["meta", SCOPE, stranger, "JSON"],
        "after_refusal": ["meta", SCOPE, f1, "INLET_RUNS"],
    }
    return dict(zip(steps, client(rucio_env, *steps.values()), strict=True))


def test_metadata_list_shows_catalogue_keys(runs: dict[str, Any], answers: dict[str, Any]) -> None:
    f = runs["names"][runs["base"]][0]
    meta, only = answers["meta_all"], answers["meta_ours"]
    assert only["run_nr"] == runs["base"] and only["run_type"] == "physics"
    assert only["experiment"] == runs["exp"] and only["run_state"] == "RECORDING"
    assert only["stream"] == "ksl" and only["run_start"] == "2026-11-01T00:00:00"
    assert meta["run_nr"] == runs["base"] and meta["name"] == f  # merged with Rucio's own columns
    assert answers["meta_dataset"]["run_nr"] == runs["base"]


def test_rucio_cli_shows_and_filters(runs: dict[str, Any], rucio_env: dict[str, str]) -> None:
    f = runs["names"][runs["base"]][0]
    out = subprocess.run(
        [RUCIO, "did", "metadata", "list", f"{SCOPE}:{f}", "--plugin", "INLET_RUNS"],
        env=rucio_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "run_type" in out and "physics" in out and "ksl" in out
    exp, base = runs["exp"], runs["base"]
    out = subprocess.run(
        [RUCIO, "did", "list", f"{SCOPE}:{exp}*", "--filter", f"run_nr>{base}"],
        env=rucio_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    # The CLI lists collections (the run datasets), in a table with their type.
    assert f"{SCOPE}:{exp}.run{base + 1}" in out and f"{SCOPE}:{exp}.run{base + 2}" in out
    assert f"{SCOPE}:{exp}.run{base} " not in out and "DATASET" in out


def test_filters_with_operators_ranges_and_or(runs: dict[str, Any], answers: dict[str, Any]) -> None:
    exp, base, names = runs["exp"], runs["base"], runs["names"]
    assert answers["files_eq"] == sorted(names[base])  # the unregistered file is not listed
    assert answers["ds_range"] == [f"{exp}.run{base}", f"{exp}.run{base + 1}"]
    assert answers["ds_or"] == [f"{exp}.run{base + 1}", f"{exp}.run{base + 2}"]
    assert answers["files_ne_lte"] == sorted(names[base + 2])
    assert answers["all_types"] == sorted([*names[base + 2], f"{exp}.run{base + 2}"])
    # rse is no metadata key: Rucio gives it to the JSON plugin, so mixing it with run_nr is refused.
    assert answers["with_rse"]["error"] == "InvalidMetadata"


def test_mixing_plugins_is_refused_by_rucio_and_run_nr_is_the_way(
    runs: dict[str, Any], answers: dict[str, Any]
) -> None:
    mixed, ours = answers["mixed"], answers["ours_only"]
    assert mixed["error"] == "InvalidMetadata" and "same metadata plugin" in mixed["message"]
    assert ours == [f"{runs['exp']}.run{runs['base']}"]


def test_writes_agree_or_are_refused_and_unknown_dids_keep_json(answers: dict[str, Any]) -> None:
    assert answers["set_same"] == "ok"
    other = answers["set_other"]
    assert other["error"] == "InvalidMetadata" and "contradicts the inlet run catalogue" in other["message"]
    assert answers["register_stranger"] == "ok" and answers["set_stranger"] == "ok"
    assert answers["stranger_json"] == {"run_type": "calib"}
    assert answers["after_refusal"]["run_type"] == "physics"
