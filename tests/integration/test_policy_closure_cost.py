"""The embargo closure of a run-sized dataset costs a handful of queries, not one per file.

A rule on a dataset of thousands of files makes the permission check follow the content down
and every parent of every file up (a file may also sit in someone's embargoed dataset). This test
runs the server-side lookup (rucio_inlet.closure) against the lake's real Rucio database, in a
child process configured like the server, and counts the SQL statements it sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from inlet.lake.lake import Lake
from tests.integration.actors import FUTURE, Actor, expect_ok, fake_file

FILES = 2000
MAX_STATEMENTS = 30

_PROBE = r"""
import json, sys, time
from sqlalchemy import event
from rucio.common.types import InternalScope
from rucio.db.sqla.session import DatabaseOperationType, db_session, get_engine
from rucio_inlet.closure import active_embargoes, closure

scope, name = sys.argv[1], sys.argv[2]
count = [0]
event.listen(get_engine(), "before_cursor_execute", lambda *a, **k: count.__setitem__(0, count[0] + 1))
with db_session(DatabaseOperationType.READ) as session:
    seeds = [(InternalScope(scope), name)]
    start = time.perf_counter()
    nodes = closure(seeds, session)
    found = active_embargoes(seeds, session)
    took = time.perf_counter() - start
print(json.dumps({"statements": count[0], "nodes": len(nodes), "dids": [e.did for e in found], "seconds": took}))
"""


def test_closure_of_a_big_dataset_is_a_few_queries(lake: Lake, tmp_path: Path) -> None:
    r = lake.settings.rucio
    root = Actor("root", lake, tmp_path, r.username, r.password)
    tag = uuid.uuid4().hex[:8]
    names = [f"cost-{tag}-{i:05d}.dat" for i in range(FILES)]
    big, foreign = f"cost-{tag}.big", f"cost-{tag}.foreign"
    try:
        # Rucio's schema takes at most 1000 DIDs per call.
        chunks = [names[i : i + 1000] for i in range(0, FILES, 1000)]
        expect_ok(
            root.run(
                *(("add_replicas", ["SITE_A_DISK", [fake_file("test", n) for n in c]], {}) for c in chunks),
                ("add_dataset", ["test", big], {}),
                *(("attach_dids", ["test", big, [{"scope": "test", "name": n} for n in c]], {}) for c in chunks),
                # The last file is also in another account's embargoed dataset.
                ("add_dataset", ["test", foreign], {"meta": {"embargo_until": FUTURE}}),
                ("attach_dids", ["test", foreign, [{"scope": "test", "name": names[-1]}]], {}),
            )
        )
    finally:
        root.close()
    env = {**os.environ, **lake.rucio_client_env()}
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, "test", big], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    probe = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"closure of {FILES} files: {probe}")  # the figure for the report (pytest -s)
    assert probe["nodes"] == FILES + 2  # the dataset, its files, and the foreign dataset above one of them
    assert probe["dids"] == [f"test:{foreign}"]
    assert probe["statements"] <= MAX_STATEMENTS, probe
