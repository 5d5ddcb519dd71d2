"""Rucio's OWN conveyor daemons move a file with the gfal2 transfertool, which only the policy
package registered (issue 15): no `inlet daemon conveyor`, no inlet import in that process.

The lake's own conveyor (`inlet daemon conveyor`) is paused (SIGSTOP) meanwhile, so the copy can
only come from Rucio's submitter, poller and finisher, called as their CLI scripts call them
(``submitter(once=True, ...)``), in one child Python with the lake's rucio.cfg
(``[policy] package = rucio_inlet``, ``[conveyor] transfertool = gfal2``). Submitter and poller
share that process: the transfertool keeps its copy jobs in memory (see rucio-inlet/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from inlet.lake.lake import Lake

# The daemons' own entry points; the loop is bounded (a guard against a hang, not a timing check).
_DAEMONS = r"""
import sys
from rucio.daemons.conveyor import finisher, poller, submitter
from rucio.core.transfer import TRANSFERTOOL_CLASSES_BY_NAME
from rucio.client import Client
assert "gfal2" in TRANSFERTOOL_CLASSES_BY_NAME, sorted(TRANSFERTOOL_CLASSES_BY_NAME)
assert not any(m == "inlet" or m.startswith("inlet.") for m in sys.modules), "inlet was imported"
print("transfertool", TRANSFERTOOL_CLASSES_BY_NAME["gfal2"].__module__)
rule_id = sys.argv[1]
client = Client()
submitter.submitter(once=True, partition_wait_time=0, transfertools=["gfal2"])
for _ in range(600):
    poller.poller(once=True, partition_wait_time=0, older_than=0, transfertool="gfal2")
    finisher.finisher(once=True, partition_wait_time=0)
    if client.get_replication_rule(rule_id)["state"] == "OK":
        print("rule OK")
        break
"""


@pytest.fixture(scope="module")
def client(lake: Lake) -> Any:
    os.environ.update(lake.exports())
    from rucio.common.config import clean_cached_config

    clean_cached_config()
    from rucio.client import Client

    return Client()


@contextmanager
def lake_conveyor_paused(lake: Lake) -> Iterator[None]:
    (svc,) = [s for s in lake.managed() if s.name == "rucio-conveyor"]
    proc = svc.proc.process()
    assert proc is not None, "the lake's conveyor is not running"
    proc.suspend()
    try:
        yield
    finally:
        proc.resume()


def test_rucios_own_conveyor_daemons_copy_with_gfal2_registered_by_the_policy_package(
    lake: Lake, client: Any, tmp_path: Path
) -> None:
    from rucio.client.uploadclient import UploadClient

    data = os.urandom(100_000)
    name = f"own-conveyor-{uuid.uuid4().hex[:8]}.dat"
    src = tmp_path / name
    src.write_bytes(data)
    UploadClient().upload([{"path": str(src), "rse": "SITE_A_DISK", "did_scope": "test"}])
    with lake_conveyor_paused(lake):
        (rule_id,) = client.add_replication_rule([{"scope": "test", "name": name}], 1, "SITE_B_DISK")
        env = {**os.environ, **lake.exports()}
        res = subprocess.run(
            [sys.executable, "-c", _DAEMONS, rule_id], env=env, capture_output=True, text=True, timeout=900, check=False
        )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "transfertool rucio_inlet.transfertool" in res.stdout
    assert "rule OK" in res.stdout, res.stderr[-3000:]
    reps = list(client.list_replicas([{"scope": "test", "name": name}], rse_expression="SITE_B_DISK"))
    (pfn,) = reps[0]["rses"]["SITE_B_DISK"]
    assert Path(urlparse(pfn).path).read_bytes() == data
