"""A reconstruction's outputs go into Rucio in bulk, and a repeated job registers nothing twice.

On the real lake: the outputs are written to SITE_A_DISK through Rucio's RSE manager,
registered with their checksums and attached to the reco dataset; a second run of the same
job (a retry after a crash) adds nothing; an output whose bytes reached the storage before a
crash, but which was never registered, is written again and registered once.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from pathlib import Path

from inlet.lake.lake import Lake
from tests.integration.conftest import python_child

REGISTER = r"""
import json, sys
from pathlib import Path
from rucio.client import Client
from inlet.listener.reco_outputs import register_outputs
dataset, *paths = sys.argv[1:]
c = Client()
new = register_outputs(c, "SITE_A_DISK", "test", dataset, [Path(p) for p in paths])
files = {f["name"]: f["adler32"] for f in c.list_files("test", dataset)}
states = {r["name"]: r["states"].get("SITE_A_DISK") for r in c.list_replicas(
    [{"scope": "test", "name": n} for n in files], all_states=True)}
print(json.dumps({"new": new, "files": files, "states": states}))
"""

STRAY = r"""
import sys
from rucio.rse import rsemanager
from rucio.common.checksum import adler32
info = rsemanager.get_rse_info("SITE_A_DISK")
path = sys.argv[1]
name = path.rsplit("/", 1)[1]
res = rsemanager.upload(info, [{"scope": "test", "name": name, "filesize": len(open(path, "rb").read()),
    "adler32": adler32(path)}], source_dir=path.rsplit("/", 1)[0])
print(res)
"""


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def test_outputs_are_registered_once_with_their_checksums_whatever_a_retry_finds(
    lake: Lake, rucio_env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    dataset = f"reco{tag}_reco"
    out = tmp_path / "out"
    out.mkdir()
    content = {f"reco{tag}.f{i}.stats.json": os.urandom(3000 + i) for i in range(7)}
    for name, data in content.items():
        (out / name).write_bytes(data)
    paths = [str(out / n) for n in sorted(content)]
    # A crash of an earlier attempt left one output's bytes on the storage, never registered.
    stray = sorted(content)[-1]
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / stray).write_bytes(b"half of an earlier attempt")
    python_child(rucio_env, STRAY, str(tmp_path / "stray" / stray))

    first = json.loads(python_child(rucio_env, REGISTER, dataset, *paths[:4]))
    assert first["new"] == 4
    again = json.loads(python_child(rucio_env, REGISTER, dataset, *paths))
    assert again["new"] == 3, "only the three outputs the first attempt had not registered are new"
    assert again["files"] == {n: _adler(d) for n, d in content.items()}
    assert set(again["states"].values()) == {"AVAILABLE"}
    # The stray bytes were replaced by the output's own: the stored copy has the registered checksum.
    root = lake.paths.data / "rses" / "SITE_A_DISK"
    stored = [p for p in root.rglob(stray) if p.is_file()]
    assert len(stored) == 1 and _adler(stored[0].read_bytes()) == _adler(content[stray])

    third = json.loads(python_child(rucio_env, REGISTER, dataset, *paths))
    assert third == {**again, "new": 0}
