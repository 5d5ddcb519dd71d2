"""Nothing is lost, and nothing registered twice, when the lake's Redis or Rucio server restarts mid-run.

The run is held mid-flight by the token bucket (deterministic: no token, no progress): one file
registered, one batch in the worker's hands waiting for a token, the rest queued in Redis. Then
the service is stopped, the worker is seen to notice, the service comes back and the gate opens.
What ends up registered is checked with Rucio's client and the catalogue, never through the
uploader's own code. These tests restart services of the session's shared lake: each puts its
service back in a ``finally``, so the tests after them find a healthy lake.
"""

from __future__ import annotations

import json
import random
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rucio_inlet.catalog_models import OutboxMessage, Run, RunFile

from inlet.catalog import open_catalog
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.services.base import Service
from inlet.uploader import pacing
from tests.integration.conftest import UploaderEnv, daq_files, inlet, python_child, start_worker, stop_worker, wait_for

SCOPE = "cygno.raw"
N_FILES = 4

# Rucio's own view of the run, from a child process (the client reads RUCIO_CONFIG once, at import).
CLIENT = r"""
import json, sys
from rucio.client import Client
scope, dataset, prefix = sys.argv[1:4]
c = Client()
content = sorted(d["name"] for d in c.list_content(scope, dataset))
dids = sorted(d for d in c.list_dids(scope, {"name": prefix + "*"}, did_type="file"))
replicas = {r["name"]: {"rses": {k: v for k, v in r["states"].items()}, "adler32": r["adler32"]}
            for r in c.list_replicas([{"scope": scope, "name": n} for n in dids], all_states=True)} if dids else {}
print(json.dumps({"content": content, "dids": dids, "replicas": replicas}))
"""


def rucio_view(env: dict[str, str], run: int) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(python_child(env, CLIENT, SCOPE, f"run{run:06d}.raw", f"run{run:06d}_"))
    return view


@pytest.fixture
def env(uploader_env: UploaderEnv, tmp_path: Path) -> dict[str, str]:
    # A visibility timeout long enough that the held batch is not handed out again while it
    # waits: a second delivery would be harmless (the pipeline is idempotent) but is not what is
    # tested here.
    pacing_one_by_one = {"files_per_second": 0.0001, "burst_files": N_FILES, "batch_size": 1}
    return uploader_env("restarts", tmp_path, **pacing_one_by_one, retry_backoff=0.5, visibility_timeout=600)


class HeldRun:
    """A run of N_FILES DAQ files, queued one batch per file, and its worker."""

    def __init__(self, lake: Lake, env: dict[str, str], tmp_path: Path) -> None:
        self.lake, self.env, self.tmp = lake, env, tmp_path
        self.r = redis.Redis.from_url(env["INLET_REDIS__URL"])
        self.r.flushdb()
        self.run = random.randint(100_000, 999_999)
        self.files = daq_files(tmp_path / "daq", self.run, N_FILES, size=4096)
        self.log = tmp_path / "worker.log"
        self.worker: subprocess.Popen[bytes] | None = None

    def start_held(self) -> None:
        """Worker up, run queued, one file through and the next batch held for a token."""
        self.bucket.try_take(N_FILES - 1, 0)  # a full bucket less all but one token
        self.worker = start_worker(self.env, self.log)
        res = inlet(self.env, "upload", *map(str, self.files), "--run", str(self.run), "--no-wait")
        assert res.returncode == 0, res.stderr
        wait_for(
            "1 registered, 1 held",
            lambda: pacing.counter(self.r, pacing.REGISTERED) == 1 and pacing.counter(self.r, pacing.WAITING) == 1,
        )
        assert self.r.llen(self.env["INLET_UPLOADER__QUEUE"]) == N_FILES - 2

    @property
    def bucket(self) -> pacing.TokenBucket:
        # The worker's parameters: the bucket's depth caps what open_gate can add.
        return pacing.TokenBucket(self.r, 0.0001, 0, N_FILES, 100e6)

    def open_gate(self) -> None:
        self.bucket.add(files=N_FILES)

    def all_registered(self) -> bool:
        # A retried batch pays for its tokens again (it loads Rucio again): keep the gate open.
        self.open_gate()
        return self.n_files() == N_FILES

    def worker_log(self) -> str:
        return self.log.read_text(errors="replace")

    def n_files(self) -> int:
        cat = open_catalog(self.lake.settings.catalog_url())
        try:
            with cat.session() as s:
                row = s.query(Run).filter_by(experiment="cygno", run_number=self.run).one_or_none()
                return row.n_files if row else 0
        finally:
            cat.dispose()

    def assert_each_registered_once(self) -> None:
        names = sorted(f.name for f in self.files)
        view = rucio_view(self.env, self.run)
        # Every file is a DID, attached to the run dataset, with its replica on the first RSE and
        # the bytes' checksum: nothing half registered, nothing extra.
        assert view["content"] == names
        assert view["dids"] == names
        for f in self.files:
            rep = view["replicas"][f.name]
            assert rep["rses"]["SITE_A_DISK"] == "AVAILABLE"  # the rules' copies may follow already
            assert rep["adler32"] == f"{zlib.adler32(f.read_bytes()) & 0xFFFFFFFF:08x}"
        cat = open_catalog(self.lake.settings.catalog_url())
        try:
            with cat.session() as s:
                run = s.query(Run).filter_by(experiment="cygno", run_number=self.run).one()
                rows = s.query(RunFile).filter_by(run_id=run.id).all()
                assert sorted(r.name for r in rows) == names
                assert all(r.registered_at is not None for r in rows)
                keys = [f"file-registered:{SCOPE}:{n}" for n in names]
                events = s.query(OutboxMessage.idempotency_key).filter(OutboxMessage.idempotency_key.in_(keys)).all()
                assert sorted(k for (k,) in events) == sorted(keys)
        finally:
            cat.dispose()

    def stop(self) -> None:
        stop_worker(self.worker)


@pytest.fixture
def held_run(lake: Lake, env: dict[str, str], tmp_path: Path) -> Iterator[HeldRun]:
    run = HeldRun(lake, env, tmp_path)
    try:
        yield run
    finally:
        run.stop()


def restore(svc: Service) -> None:
    """Put a lake service back (a failed test must not leave the shared lake without it)."""
    if not svc.ready():
        if not svc.proc.is_running():
            svc.start()
        assert wait_until(svc.ready, 120), f"{svc.name} did not come back:\n{svc.proc.log_tail()}"


def test_redis_restart_mid_run_loses_no_file_and_registers_each_once(lake: Lake, held_run: HeldRun) -> None:
    svc = lake.groups()["redis"][0]
    held_run.start_held()
    try:
        svc.proc.stop()  # the lake's own Redis, by its pid file: SIGTERM, the AOF is flushed
        # Both the consumer and the batch waiting for a token have seen Redis go.
        wait_for(
            "the worker to notice",
            lambda: (
                "Connection to broker lost" in held_run.worker_log()
                and "Redis unreachable while waiting for pacing tokens" in held_run.worker_log()
            ),
        )
        svc.start()
        assert wait_until(svc.ready, 120), svc.proc.log_tail()
    finally:
        restore(svc)
    # The queue came back from the AOF.
    assert held_run.r.llen(held_run.env["INLET_UPLOADER__QUEUE"]) == N_FILES - 2
    held_run.open_gate()
    assert wait_for("every file registered", held_run.all_registered, 180)
    assert wait_for("the worker's count", lambda: pacing.counter(held_run.r, pacing.REGISTERED) == N_FILES, 60)
    assert held_run.worker is not None and held_run.worker.poll() is None, "the worker must survive"
    assert "Redis is back" in held_run.worker_log()
    held_run.assert_each_registered_once()


def test_rucio_restart_mid_run_retries_and_registers_each_once(lake: Lake, held_run: HeldRun) -> None:
    svc = lake.groups()["rucio"][0]
    held_run.start_held()
    try:
        svc.proc.stop()  # gunicorn and its workers, by the lake's pid file
        held_run.open_gate()
        wait_for(
            "a batch to fail against the stopped server and be retried", lambda: "; retry in " in held_run.worker_log()
        )
        svc.start()
        assert wait_until(svc.ready, 120), svc.proc.log_tail()
    finally:
        restore(svc)
    assert wait_for("every file registered", held_run.all_registered, 240)
    assert wait_for("the worker's count", lambda: pacing.counter(held_run.r, pacing.REGISTERED) == N_FILES, 60)
    assert "failed for good" not in held_run.worker_log()
    held_run.assert_each_registered_once()
