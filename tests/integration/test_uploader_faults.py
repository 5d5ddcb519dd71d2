"""Nothing is lost when a worker is killed (SIGKILL, no goodbye) in the middle of a batch.

The batch is held mid-flight by the token bucket (deterministic: no token, no progress), the
worker is killed, another worker starts, and Redis hands it the unacknowledged task once the
visibility timeout has passed. Assertions are about what ends up registered, never about time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
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


@pytest.fixture
def env(lake: Lake, tmp_path: Path) -> dict[str, str]:
    base = lake.settings.redis.url.rsplit("/", 1)[0]
    return {
        **os.environ,
        **lake.rucio_client_env(),
        **lake.exports(),
        "INLET_REDIS__URL": f"{base}/8",
        "INLET_UPLOADER__QUEUE": f"inlet.upload.faults-{uuid.uuid4().hex[:8]}",
        "INLET_UPLOADER__STATE_DIR": str(tmp_path / "state"),
        "INLET_UPLOADER__QUARANTINE_DIR": str(tmp_path / "quarantine"),
        "INLET_UPLOADER__FILES_PER_SECOND": "0.0001",
        "INLET_UPLOADER__BURST_FILES": "1",
        "INLET_UPLOADER__BATCH_SIZE": "1",
        "INLET_UPLOADER__VISIBILITY_TIMEOUT": "10",
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(BIN / "celery"), "-A", "inlet.uploader", "worker", "-c", "1", "-n", f"{log.stem}@test",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    wait_for(f"worker {log.stem}", lambda: b"ready." in log.read_bytes() or proc.poll() is not None, 120)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def test_a_killed_worker_loses_no_file(lake: Lake, env: dict[str, str], tmp_path: Path) -> None:
    r = redis.Redis.from_url(env["INLET_REDIS__URL"])
    r.flushdb()
    run = random.randint(100_000, 999_999)
    files = []
    for i in (1, 2):
        p = tmp_path / f"run{run:06d}_pmt_{i:04d}.mid.gz"
        p.write_bytes(os.urandom(2048))
        files.append(p)
    first = start_worker(env, tmp_path / "victim.log")
    second = None
    try:
        res = subprocess.run([str(BIN / "inlet"), "upload", *map(str, files), "--run", str(run), "--no-wait"],
                             env=env, capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
        assert res.returncode == 0, res.stderr
        # One token: the first file is registered, the second batch is in the worker's hands, waiting.
        wait_for("1 registered, 1 held", lambda: pacing.counter(r, pacing.REGISTERED) == 1
                 and pacing.counter(r, pacing.WAITING) == 1)  # fmt: skip
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
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
