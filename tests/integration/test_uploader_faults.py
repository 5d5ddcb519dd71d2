"""Nothing is lost when a worker is killed (SIGKILL, no goodbye) in the middle of a batch.

The batch is held mid-flight by the token bucket (deterministic: no token, no progress), the
worker is killed, another worker starts, and Redis hands it the unacknowledged task once the
visibility timeout has passed. Assertions are about what ends up registered, never about time.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import redis
from rucio_inlet.catalog_models import Run

from inlet.catalog import open_catalog
from inlet.lake.lake import Lake
from inlet.uploader import pacing
from tests.integration.conftest import UploaderEnv, daq_files, inlet, start_worker, stop_worker, wait_for


@pytest.fixture
def env(uploader_env: UploaderEnv, tmp_path: Path) -> dict[str, str]:
    return uploader_env("faults", tmp_path, files_per_second=0.0001, burst_files=1, batch_size=1, visibility_timeout=10)


def test_a_killed_worker_loses_no_file(lake: Lake, env: dict[str, str], tmp_path: Path) -> None:
    r = redis.Redis.from_url(env["INLET_REDIS__URL"])
    r.flushdb()
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path, run, 2, size=2048)
    first = start_worker(env, tmp_path / "victim.log")
    second = None
    try:
        res = inlet(env, "upload", *map(str, files), "--run", str(run), "--no-wait")
        assert res.returncode == 0, res.stderr
        # One token: the first file is registered, the second batch is in the worker's hands, waiting.
        wait_for(
            "1 registered, 1 held",
            lambda: pacing.counter(r, pacing.REGISTERED) == 1 and pacing.counter(r, pacing.WAITING) == 1,
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        r.set(pacing.WAITING, 0)  # the killed worker could not take itself off the waiting count
        pacing.TokenBucket(r, 0.0001, 0, 1, 1e9).add(files=1)
        second = start_worker(env, tmp_path / "heir.log")
        cat = open_catalog(lake.settings.catalog_url())

        def n_files() -> int:
            with cat.session() as s:
                run_row = s.query(Run).filter_by(experiment="cygno", run_number=run).one_or_none()
                return run_row.n_files if run_row else 0

        assert wait_for("the held file registered by the other worker", lambda: n_files() == 2, 120)
        cat.dispose()
        # The worker counts a batch after its catalogue commit: wait for that, too.
        assert wait_for("the heir's count", lambda: pacing.counter(r, pacing.REGISTERED) == 2, 60)
        assert [g["who"] for g in pacing.grants(r)] == ["victim@test", "heir@test"]
    finally:
        for proc in (first, second):
            stop_worker(proc, 30)
