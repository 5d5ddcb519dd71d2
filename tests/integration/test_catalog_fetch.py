"""`inlet fetch` through the real lake: from disk, and from TAPE via recall rules moved by the
lake's conveyor; resumable, verified against the catalogue's adler32."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

from inlet.catalog import open_catalog
from inlet.catalog.runs import add_file, upsert_run
from inlet.lake.lake import Lake
from tests.integration.conftest import python_child

INLET = str(Path(sys.executable).parent / "inlet")

UPLOAD = r"""
import json, sys
from rucio.client.uploadclient import UploadClient
for rse, path in json.loads(sys.stdin.read()):
    UploadClient().upload([{"path": path, "rse": rse, "did_scope": "test", "register_after_upload": True}])
"""

RULES = r"""
import json, sys
from rucio.client import Client
c = Client()
print(json.dumps([r for name in json.loads(sys.stdin.read()) for r in c.list_did_rules("test", name)], default=str))
"""


def _py(code: str, env: dict[str, str], data: object) -> str:
    return python_child(env, code, stdin=json.dumps(data))


def _fetch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INLET, "fetch", *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_fetch_from_disk_and_tape_resumable_and_reports_missing(
    lake: Lake, rucio_env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    exp = f"fetch{tag}"
    src = tmp_path / "src"
    src.mkdir()
    content: dict[str, bytes] = {}
    uploads: list[tuple[str, str]] = []
    cat = open_catalog(lake.settings.catalog_url())
    with cat.session() as s:
        for number, rse in ((1, "SITE_A_DISK"), (2, "TAPE")):
            run = upsert_run(s, exp, number, scope="test", dataset=f"{exp}.run{number}")
            for i in range(2):
                name = f"{exp}.run{number}.f{i}.dat"
                data = os.urandom(2000 + i)
                (src / name).write_bytes(data)
                content[name] = data
                uploads.append((rse, str(src / name)))
                add_file(s, run, "test", name, len(data), adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")
        # In the catalogue but never registered in Rucio: reported, and nothing else is held up.
        ghost = upsert_run(s, exp, 3, scope="test")
        add_file(s, ghost, "test", f"{exp}.run3.ghost.dat", 5, adler32="00000001")
    cat.dispose()
    _py(UPLOAD, rucio_env, uploads)

    dest = tmp_path / "out"
    (dest / "test").mkdir(parents=True)
    # Resumable: one disk file is already there and correct, one is there but corrupt.
    (dest / "test" / f"{exp}.run1.f0.dat").write_bytes(content[f"{exp}.run1.f0.dat"])
    (dest / "test" / f"{exp}.run1.f1.dat").write_bytes(b"truncated")

    res = _fetch(rucio_env, f"test: experiment = {exp}", "--to", str(dest), "--recall-timeout", "240")
    assert res.returncode == 1, res.stdout + res.stderr
    assert (
        "5 selected: 1 already present and verified, 3 downloaded, 2 recall rule(s) in 1 group(s), 1 failed"
        in res.stderr
    )
    assert f"failed test:{exp}.run3.ghost.dat: no AVAILABLE replica in Rucio" in res.stderr
    for name, data in content.items():
        assert (dest / "test" / name).read_bytes() == data

    # The recall went through rules to a disk RSE, with a lifetime (the cache copy is reaped later).
    rules = json.loads(_py(RULES, rucio_env, [f"{exp}.run2.f0.dat", f"{exp}.run2.f1.dat"]))
    recalls = [r for r in rules if r["rse_expression"] == "rse_type=DISK"]  # the others: the uploads' own
    assert len(recalls) == 2
    assert all(r["expires_at"] and r["state"] == "OK" and r["grouping"] == "ALL" for r in recalls)

    again = _fetch(rucio_env, f"test: experiment = {exp} and run < 3", "--to", str(dest))
    assert again.returncode == 0, again.stderr
    assert "4 selected: 4 already present and verified, 0 downloaded" in again.stderr
