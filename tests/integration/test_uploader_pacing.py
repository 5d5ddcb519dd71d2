"""Pacing across workers: two real Celery workers share one token bucket in the lake's Redis.

The bucket is made deep enough for three files and refills so slowly that no further token
arrives during the test; the assertions are about counts and who took what, never about time.
"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rucio_inlet.catalog_models import Run

from inlet.catalog import open_catalog
from inlet.lake.lake import Lake
from inlet.uploader import pacing
from tests.integration.conftest import UploaderEnv, daq_files, inlet, wait_for


@pytest.fixture(scope="module")
def env(uploader_env: UploaderEnv) -> dict[str, str]:
    # This module's own Redis database: a fresh bucket, counters and grant log.
    return uploader_env("pacing", files_per_second=0.0001, burst_files=3, batch_size=1)


@pytest.fixture(scope="module")
def r(env: dict[str, str]) -> redis.Redis:
    client = redis.Redis.from_url(env["INLET_REDIS__URL"])
    client.flushdb()
    return client


@pytest.fixture(scope="module")
def workers(env: dict[str, str], r: redis.Redis, celery_worker: Callable[..., subprocess.Popen[bytes]]) -> list[str]:
    names = [f"pace-{c}-{uuid.uuid4().hex[:4]}" for c in "ab"]
    for name in names:
        celery_worker(env, name)
    return [f"{name}@test" for name in names]


def test_two_workers_share_one_bucket_and_wait_instead_of_dropping(
    lake: Lake, env: dict[str, str], r: redis.Redis, workers: list[str], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path, run, 5, size=4096)
    res = inlet(env, "upload", *map(str, files), "--run", str(run), "--no-wait")
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
