"""Files that really become AVAILABLE on an RSE, for the follow tests and bench_follow.

A child process with the lake's Rucio client makes a dataset with a rule to SITE_B_DISK, then,
on each command, writes files onto SITE_A_DISK, registers their replicas and attaches them: the
judge, the conveyor and the finisher copy them to SITE_B_DISK and mark them AVAILABLE there,
hermes says ``transfer-done``, and ``inlet listen`` (started here, with SITE_B_DISK as its "S3"
class of RSEs) writes the catalogue's availability rows that followers read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rucio_inlet.catalog_states import RunState
from sqlalchemy.orm import Session

from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.catalog.runs import FileSpec
from inlet.lake.lake import Lake

BIN = Path(sys.executable).parent
SOURCE_RSE = "SITE_A_DISK"
TARGET_RSE = "SITE_B_DISK"

_DRIVER = r"""
import json, os, sys, time
from urllib.parse import urlparse
from rucio.client import Client
c = Client()
ds, target = sys.argv[1], sys.argv[2]
c.add_dataset("test", ds)
c.add_replication_rule([{"scope": "test", "name": ds}], 1, target, notify="N")
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    for f in json.loads(line):
        name = f["name"]
        pfn = c.lfns2pfns("SITE_A_DISK", [f"test:{name}"], operation="write", scheme="file")[f"test:{name}"]
        path = urlparse(pfn).path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(f["path"], "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        c.add_replicas("SITE_A_DISK", [{"scope": "test", "name": name, "bytes": f["size"], "adler32": f["adler32"]}])
        c.attach_dids("test", ds, [{"scope": "test", "name": name}])
        print(json.dumps({"name": name, "attached": time.time()}), flush=True)
"""


@dataclass(frozen=True)
class DataFile:
    name: str
    path: str
    size: int
    adler32: str


def make_files(root: Path, prefix: str, start: int, n: int, size: int = 20_000) -> list[DataFile]:
    out = []
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        data = os.urandom(size)
        p = root / f"{prefix}_{i:04d}.dat"
        p.write_bytes(data)
        out.append(DataFile(p.name, str(p), size, f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"))
    return out


def register(cat: Catalog, run: int, files: list[DataFile]) -> None:
    """The run and its files in the catalogue (as the uploader would have put them)."""

    def work(session: Session) -> None:
        r = catalog_runs.upsert_run(session, "test", run, scope="test", dataset=f"run{run}")
        catalog_runs.add_files(session, r, [FileSpec("test", f.name, f.size, f.adler32) for f in files])
        if r.state == RunState.RECORDING:
            catalog_runs.transition(session, r, RunState.CLOSED)
            catalog_runs.transition(session, r, RunState.UPLOADED)

    cat.transaction(work)


class Flow:
    """The Rucio side: attach files, they reach SITE_B_DISK by the lake's real daemons."""

    def __init__(self, lake: Lake, dataset: str) -> None:
        env = {**os.environ, **lake.exports()}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, dataset, TARGET_RSE],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise AssertionError("the Rucio driver died at start")

    def attach(self, files: list[DataFile]) -> dict[str, float]:
        """Attach FILES now (one Rucio call each); returns name → when it was attached."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([f.__dict__ for f in files]) + "\n")
        self.proc.stdin.flush()
        out = {}
        for _ in files:
            rec: dict[str, Any] = json.loads(self.proc.stdout.readline())
            out[rec["name"]] = rec["attached"]
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def listener_env(lake: Lake, catalog_url: str) -> dict[str, str]:
    return {
        **os.environ,
        **lake.exports(),
        "INLET_CATALOG__URL": catalog_url,
        "INLET_LISTENER__S3_RSES": json.dumps([TARGET_RSE]),
        "INLET_LISTENER__TAPE_RSES": "[]",
    }


def start_listener(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(BIN / "inlet"), "listen"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
