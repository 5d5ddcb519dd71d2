"""The CLI against the real lake: read commands print JSON with --json, and `inlet upload` says at
once when no worker would take its files (instead of waiting silently until it is killed).

Commands whose JSON needs no service are checked without a lake, in
tests/unit/cli/test_no_tracebacks.py.
"""

from __future__ import annotations

import json
import random
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.conftest import UploaderEnv, daq_files, inlet

INLET = str(Path(sys.executable).parent / "inlet")


@pytest.fixture(scope="module")
def env(uploader_env: UploaderEnv) -> Iterator[dict[str, str]]:
    """The lake's environment, with a queue no worker consumes (it is this module's own)."""
    env = uploader_env("noworker")
    yield env
    redis.Redis.from_url(env["INLET_REDIS__URL"]).delete(env["INLET_UPLOADER__QUEUE"])  # what --no-wait queued


@pytest.mark.parametrize(
    "args",
    [["events", "dlq", "list"], ["uploader", "status"], ["embargo", "release", "--dry-run"], ["reconcile"]],
    ids=" ".join,
)
def test_read_command_prints_json_on_the_lake(env: dict[str, str], args: list[str]) -> None:
    res = inlet(env, *args, "--json")
    assert res.returncode in (0, 1), res.stderr  # 1: problems found (reconcile)
    json.loads(res.stdout)


def daq_file(tmp_path: Path) -> tuple[Path, int]:
    run = random.randint(100_000, 999_999)
    (path,) = daq_files(tmp_path, run, 1, size=1024)
    return path, run


def test_upload_without_a_worker_says_so_at_once_and_waits(env: dict[str, str], tmp_path: Path) -> None:
    path, run = daq_file(tmp_path)
    proc = subprocess.Popen([INLET, "upload", str(path), "--run", str(run)], env=env, stderr=subprocess.PIPE, text=True)
    said = ""
    try:
        assert proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        # Generous: the point is that it is said while the command waits, not how fast.
        deadline = time.monotonic() + 120
        while "no uploader worker" not in said and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=1):
                said += proc.stderr.readline()
        assert f"`celery -A inlet.uploader worker -Q {env['INLET_UPLOADER__QUEUE']}`" in said, said
        assert proc.poll() is None  # still waiting for a worker, not gone
    finally:
        proc.terminate()
        proc.wait(30)


def test_upload_without_a_worker_gives_up_after_timeout(env: dict[str, str], tmp_path: Path) -> None:
    path, run = daq_file(tmp_path)
    res = inlet(env, "upload", str(path), "--run", str(run), "--timeout", "1")
    assert res.returncode == 2, res.stderr
    assert "no uploader worker took the queue" in res.stderr and "nothing was queued" in res.stderr
    assert redis.Redis.from_url(env["INLET_REDIS__URL"]).llen(env["INLET_UPLOADER__QUEUE"]) == 0


def test_upload_no_wait_without_a_worker_queues_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    path, run = daq_file(tmp_path)
    res = inlet(env, "upload", str(path), "--run", str(run), "--no-wait")
    assert res.returncode == 0, res.stderr
    assert "no uploader worker consumes the queue" in res.stderr
    assert "queued 1 files" in res.stderr
