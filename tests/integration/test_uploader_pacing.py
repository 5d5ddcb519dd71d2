"""Pacing across workers: two real Celery workers share one token bucket in the lake's Redis.

The bucket is made deep enough for three files and refills so slowly that no further token
arrives during the test; the assertions are about counts and who took what, never about time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from inlet.catalog import open_catalog
from inlet.catalog.models import Run
from inlet.lake.lake import Lake
from inlet.uploader import pacing

BIN = Path(sys.executable).parent


def wait_for(what: str, cond: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def env(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("pacing-state")
    base = lake.settings.redis.url.rsplit("/", 1)[0]
    return {
        **os.environ,
        **lake.rucio_client_env(),
        **lake.exports(),
        # A Redis database of its own: a fresh bucket, counters and grant log.
        "INLET_REDIS__URL": f"{base}/7",
        "INLET_UPLOADER__QUEUE": f"inlet.upload.pacing-{uuid.uuid4().hex[:8]}",
        "INLET_UPLOADER__STATE_DIR": str(state / "state"),
        "INLET_UPLOADER__QUARANTINE_DIR": str(state / "quarantine"),
        "INLET_UPLOADER__FILES_PER_SECOND": "0.0001",
        "INLET_UPLOADER__BURST_FILES": "3",
        "INLET_UPLOADER__BATCH_SIZE": "1",
    }


@pytest.fixture(scope="module")
def r(env: dict[str, str]) -> redis.Redis:
    client = redis.Redis.from_url(env["INLET_REDIS__URL"])
    client.flushdb()
    return client


@pytest.fixture(scope="module")
def workers(env: dict[str, str], r: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    logs = tmp_path_factory.mktemp("workers")
    names = [f"pace-{c}-{uuid.uuid4().hex[:4]}@test" for c in "ab"]
    procs = []
    for name in names:
        out = (logs / f"{name}.log").open("wb")
        procs.append(subprocess.Popen(
            [str(BIN / "celery"), "-A", "inlet.uploader", "worker", "-c", "1", "-n", name, "--loglevel", "INFO",
             "--without-gossip", "--without-mingle"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:
        for name, proc in zip(names, procs, strict=True):
            log = logs / f"{name}.log"
            wait_for(f"worker {name}", lambda log=log, proc=proc: b"ready." in log.read_bytes() or proc.poll(), 120)
            assert proc.poll() is None, log.read_text()[-3000:]
        yield names
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_two_workers_share_one_bucket_and_wait_instead_of_dropping(
    lake: Lake, env: dict[str, str], r: redis.Redis, workers: list[str], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    files = []
    for i in range(1, 6):
        p = tmp_path / f"run{run:06d}_pmt_{i:04d}.mid.gz"
        p.write_bytes(os.urandom(4096))
        files.append(p)
    res = subprocess.run(
        [str(BIN / "inlet"), "upload", *map(str, files), "--run", str(run), "--no-wait"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr

    # Three tokens: three files registered; the other two are held by the two workers, waiting.
    wait_for(
        "3 registered and 2 waiting",
        lambda: pacing.counter(r, pacing.REGISTERED) == 3 and pacing.counter(r, pacing.WAITING) == 2,
    )
    assert int(r.llen(env["INLET_UPLOADER__QUEUE"])) == 0  # nothing dropped, nothing left unclaimed
    cat = open_catalog(lake.settings.catalog_url())
    with cat.session() as s:
        assert s.query(Run).filter_by(experiment="cygno", run_number=run).one().n_files == 3
    first = pacing.grants(r)
    assert len(first) == 3

    # Two more tokens: exactly the two waiting batches go, one on each worker.
    pacing.TokenBucket(r, 0.0001, 0, 3, 1e9).add(files=2)
    wait_for("5 registered", lambda: pacing.counter(r, pacing.REGISTERED) == 5)
    assert pacing.counter(r, pacing.WAITING) == 0
    grants = pacing.grants(r)
    assert [g["files"] for g in grants] == [1, 1, 1, 1, 1]
    assert {g["who"] for g in grants[3:]} == set(workers)
    with cat.session() as s:
        assert s.query(Run).filter_by(experiment="cygno", run_number=run).one().n_files == 5
    cat.dispose()
    assert json.loads(r.get(pacing.REGISTERED) or b"0") == 5
