"""`inlet reconcile` against the real Rucio: planted mismatches are found, --apply fixes the
catalogue side, and what needs a human stays reported."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

from inlet.catalog import RunState, open_catalog
from inlet.catalog.runs import add_file, get_file, get_run, mark_available, mark_file, transition, upsert_run
from inlet.lake.lake import Lake
from tests.integration.conftest import python_child

INLET = str(Path(sys.executable).parent / "inlet")
UPLOAD = r"""
import json, sys
from rucio.client import Client
from rucio.client.uploadclient import UploadClient
spec = json.loads(sys.stdin.read())
for rse, path in spec["files"]:
    UploadClient().upload([{"path": path, "rse": rse, "did_scope": "test", "register_after_upload": True}])
c = Client()
c.add_dataset("test", spec["dataset"])
c.attach_dids("test", spec["dataset"], [{"scope": "test", "name": n} for n in spec["names"]])
"""
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _reconcile(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, object]]]:
    res = subprocess.run(
        [INLET, "reconcile", "--json", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


def test_reconcile_finds_planted_mismatches_and_applies_catalogue_fixes(
    lake: Lake, rucio_env: dict[str, str], tmp_path: Path
) -> None:
    exp = f"recon{uuid.uuid4().hex[:8]}"
    names = [f"{exp}.run1.f{i}.dat" for i in range(2)]
    data = {n: os.urandom(500 + i) for i, n in enumerate(names)}
    for n, d in data.items():
        (tmp_path / n).write_bytes(d)
    spec = {"files": [["TAPE", str(tmp_path / n)] for n in names], "dataset": f"{exp}.run1", "names": names}
    python_child(rucio_env, UPLOAD, stdin=json.dumps(spec))

    cat = open_catalog(lake.settings.catalog_url())
    with cat.session() as s:
        # Run 1: in Rucio on TAPE, but the catalogue lags (no registration, no availability, UPLOADED).
        run1 = upsert_run(s, exp, 1, scope="test", dataset=f"{exp}.run1")
        add_file(s, run1, "test", names[0], len(data[names[0]]), adler32=f"{zlib.adler32(data[names[0]]):08x}")
        add_file(s, run1, "test", names[1], len(data[names[1]]), adler32="0badf00d")  # planted: wrong checksum
        mark_available(s, "test", names[0], "SITE_B_DISK", T0)  # planted: Rucio has no such replica
        for step in (RunState.CLOSED, RunState.UPLOADED):
            transition(s, run1, step)
        # Run 2: the catalogue believes in a file and a dataset Rucio never saw.
        run2 = upsert_run(s, exp, 2, scope="test", dataset=f"{exp}.run2")
        add_file(s, run2, "test", f"{exp}.run2.ghost.dat", 7, adler32="00000007")
        mark_file(s, "test", f"{exp}.run2.ghost.dat", registered_at=T0)
        mark_available(s, "test", f"{exp}.run2.ghost.dat", "TAPE", T0)
        # Run 3: a scope this Rucio's schema refuses (a dot, and no experiment of that name):
        # Rucio refuses any bulk call naming it, which must not stop the other runs' checks.
        run3 = upsert_run(s, exp, 3, scope=f"{exp}.raw", dataset=f"{exp}.run3")
        add_file(s, run3, f"{exp}.raw", f"{exp}.run3.f0.dat", 5, adler32="00000005")

    code, found = _reconcile(rucio_env, "--experiment", exp)
    assert code == 1
    kinds = sorted((m["kind"], m["subject"]) for m in found)
    assert kinds == sorted(
        [
            ("not_registered", f"test:{names[0]}"),
            ("not_registered", f"test:{names[1]}"),
            ("missing_availability", f"test:{names[0]}"),
            ("missing_availability", f"test:{names[1]}"),
            ("stale_availability", f"test:{names[0]}"),
            ("content_mismatch", f"test:{names[1]}"),
            ("state_behind", f"{exp}/1"),
            ("missing_in_rucio", f"test:{exp}.run2.ghost.dat"),
            ("dataset_missing", f"test:{exp}.run2"),
            ("invalid_in_rucio", f"{exp}/3"),
        ]
    )
    refused = next(m for m in found if m["kind"] == "invalid_in_rucio")
    assert f"{exp}.raw" in str(refused["detail"]) and "\n" not in str(refused["detail"])
    assert all(m["fix"] and not m["applied"] for m in found)
    with cat.session() as s:  # reporting changed nothing
        assert get_run(s, exp, 1).state is RunState.UPLOADED

    code, applied = _reconcile(rucio_env, "--experiment", exp, "--apply")
    assert code == 1  # content_mismatch, dataset_missing and invalid_in_rucio need a human
    human = {"content_mismatch", "dataset_missing", "invalid_in_rucio"}
    assert {m["kind"] for m in applied if not m["applied"]} == human

    with cat.session() as s:
        run1 = get_run(s, exp, 1)
        assert run1.state is RunState.ON_TAPE
        assert [(t.from_state, t.to_state) for t in run1.transitions][-2:] == [
            ("UPLOADED", "ON_S3"),
            ("ON_S3", "ON_TAPE"),
        ]
        f0 = get_file(s, "test", names[0])
        assert {a.rse for a in f0.availability} == {"TAPE"} and f0.registered_at is not None
        ghost = get_file(s, "test", f"{exp}.run2.ghost.dat")
        assert ghost.registered_at is None and ghost.availability == []

    code, left = _reconcile(rucio_env, "--experiment", exp)
    assert sorted(m["kind"] for m in left) == ["content_mismatch", "dataset_missing", "invalid_in_rucio"]
    cat.dispose()
