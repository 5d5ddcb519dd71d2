"""Real Rucio activity drives the built-in handlers through hermes, ActiveMQ and ``inlet listen``.

A run's raw dataset gets a rule with ``notify=Y`` on an RSE that already holds its files, so
the judge marks it OK at once and hermes emits ``rule_ok`` and ``datasetlock_ok``; those go
through the broker's composite topic into the listener's real queue. Until the conveyor can
copy to the S3 and TAPE RSEs, the test names SITE_A_DISK as the "S3" and "TAPE" classes of
RSEs (``[listener] s3_rses/tape_rses``) and as the processing RSE: the handlers' path (Rucio
lookup of the rule's RSEs, per-RSE file times, the run's transitions, the reconstruction
trigger) is the one a copy to S3 or tape takes. A real Celery worker runs the example
reconstruction and registers its output in Rucio.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pymysql
import redis
from rucio_inlet.catalog_models import FileAvailability, RunFile
from sqlalchemy import select

from inlet.catalog import Run, RunState
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.services.base import venv_bin
from tests.integration.conftest import Topic

SETUP_RUCIO = """
import json, sys
from rucio.client import Client
from rucio.client.uploadclient import UploadClient
args = json.loads(sys.argv[1])
c = Client()
items = [{"path": p, "rse": "SITE_A_DISK", "did_scope": "test"} for p in args["paths"]]
UploadClient(c).upload(items)
c.add_dataset("test", args["dataset"])
c.attach_dids("test", args["dataset"], [{"scope": "test", "name": n} for n in args["names"]])
rule = c.add_replication_rule([{"scope": "test", "name": args["dataset"]}], 1, "SITE_A_DISK",
                              grouping="DATASET", notify="Y")
print(json.dumps(rule))
"""


CHECK_RECO = """
import json, sys
from rucio.client import Client
c = Client()
ds = sys.argv[1]
files = [f["name"] for f in c.list_files("test", ds)]
rules = [[r["rse_expression"], r["state"]] for r in c.list_did_rules("test", ds)]
print(json.dumps({"files": files, "rules": rules}))
"""


def test_rucio_events_move_the_run_release_the_daq_copies_and_reconstruct_it(
    lake: Lake, rucio_env: dict[str, str], catalog: tuple[str, Catalog], tmp_path: Path
) -> None:
    url, cat = catalog
    run_number = random.randint(100_000, 999_999)
    dataset = f"run{run_number}_raw"
    names = [f"run{run_number}_{i:03d}.dat" for i in range(2)]
    for n in names:
        (tmp_path / n).write_bytes(os.urandom(4096))

    def register(session: object) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        run = catalog_runs.upsert_run(session, "test", run_number, scope="test", dataset=dataset)
        for n in names:
            catalog_runs.add_file(session, run, "test", n, 4096)
        catalog_runs.transition(session, run, RunState.CLOSED)
        catalog_runs.transition(session, run, RunState.UPLOADED)

    cat.transaction(register)

    # The uploader's side of the release signal: a plain subscriber on the inlet topic.
    b = lake.settings.broker
    collect = Topic(b, b.inlet_topic).open()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    config = tmp_path / "inlet.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [listener]
            consumer = "it-{uuid.uuid4().hex[:8]}"
            s3_rses = ["SITE_A_DISK"]
            tape_rses = ["SITE_A_DISK"]
            metrics_port = {metrics_port}

            [listener.reco]
            processing_rses = ["SITE_A_DISK"]
            scope = "test"
            rse = "SITE_A_DISK"
            work_dir = "{tmp_path / "reco"}"
            """
        )
    )
    env = {**rucio_env, "INLET_CONFIG": str(config), "INLET_CATALOG__URL": url}
    log = tmp_path / "listener.log"
    worker_log = tmp_path / "worker.log"
    with log.open("wb") as out, worker_log.open("wb") as wout:
        listener = subprocess.Popen([venv_bin("inlet"), "-v", "listen"], env=env, stdout=out, stderr=out)
        worker = subprocess.Popen(
            [venv_bin("celery"), "-A", "inlet.listener.reco_task", "worker", "--pool", "solo", "-l", "INFO"],
            env=env,
            stdout=wout,
            stderr=wout,
        )
    try:
        # Anything pushed into the reconstruction queue by whoever holds the Redis password: the
        # worker drops it with an alarm and goes on to reconstruct the run below.
        garbage = redis.Redis.from_url(lake.settings.redis.url)
        garbage.lpush("celery", b"\xff not json", json.dumps({"body": "x", "headers": 5}))
        garbage.close()
        spec = {"paths": [str(tmp_path / n) for n in names], "names": names, "dataset": dataset}
        res = subprocess.run(
            [sys.executable, "-c", SETUP_RUCIO, json.dumps(spec)],
            env=rucio_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert res.returncode == 0, res.stderr[-3000:]

        def reconstructed() -> bool:
            with cat.session() as s:
                return catalog_runs.get_run(s, "test", run_number).state == RunState.RECONSTRUCTED

        # Bounds a hang only: hermes and the judge run every [lake] daemon_sleep seconds.
        assert wait_until(reconstructed, 180), (
            log.read_text(errors="replace")[-3000:] + worker_log.read_text(errors="replace")[-3000:]
        )
        with cat.session() as s:
            run = s.scalars(select(Run).where(Run.experiment == "test", Run.run_number == run_number)).one()
            rows = s.execute(
                select(RunFile.name, FileAvailability.rse, FileAvailability.available_at)
                .join(FileAvailability, FileAvailability.file_id == RunFile.id)
                .where(RunFile.run_id == run.id)
            ).all()
            assert sorted((r[0], r[1]) for r in rows) == [(n, "SITE_A_DISK") for n in names]
            assert all(r[2] is not None for r in rows)
            moves = [(t.from_state, t.to_state) for t in run.transitions]
            assert moves[-3:] == [("UPLOADED", "ON_S3"), ("ON_S3", "ON_TAPE"), ("ON_TAPE", "RECONSTRUCTED")]
            assert run.transitions[-3].reason == "all 2 files on SITE_A_DISK"
            assert run.transitions[-1].reason == f"2 output(s) in test:{dataset}_reco"

        assert worker.poll() is None, worker_log.read_text(errors="replace")[-3000:]
        assert "ALARM dropped an item" in worker_log.read_text(errors="replace")

        # The reconstruction's outputs are in Rucio, in the reco dataset, under a rule.
        check = subprocess.run(
            [sys.executable, "-c", CHECK_RECO, f"{dataset}_reco"],
            env=rucio_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stderr[-2000:]
        reco = json.loads(check.stdout)
        assert sorted(reco["files"]) == sorted(f"{n}.stats.json" for n in names)
        assert [r[0] for r in reco["rules"]] == ["SITE_A_DISK"]
        stats = json.loads((tmp_path / "reco" / f"reco_test_{dataset}" / "out" / f"{names[0]}.stats.json").read_text())
        assert stats["input"] == names[0] and stats["chunks"][0]["bytes"] == 4096

        released: dict[str, dict[str, object]] = {}
        while set(released) != set(names):
            body = json.loads(collect.inbox.get(timeout=120).body)
            payload = body["payload"]
            assert isinstance(payload, dict)
            if body["event_type"] == "daq-release" and payload["name"] in names:
                released[str(payload["name"])] = body
        for n, body in released.items():
            assert body["id"] == f"daq-release:test:{n}"

        status = subprocess.run(
            [venv_bin("inlet"), "listen", "--status"], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stderr
        assert 'inlet_listener_events_total{event_type="datasetlock_ok",outcome="handled"}' in status.stdout
        assert 'inlet_listener_handler_seconds_count{handler="catalog"}' in status.stdout
        assert "inlet_listener_lag_seconds_count" in status.stdout
        assert "dlq /queue/inlet.listener.dlq:" in status.stdout
    finally:
        collect.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
    # Each handler applied each Rucio event once: the ledger holds one row per (handler, event).
    conn = pymysql.connect(
        host="127.0.0.1",
        port=lake.settings.lake.mariadb_port,
        user="inlet",
        password="inlet-secret",
        database=url.rsplit("/", 1)[1],
    )
    with conn.cursor() as cur:
        cur.execute("SELECT consumer, event_key, COUNT(*) FROM processed_events GROUP BY consumer, event_key")
        counts = [r[2] for r in cur.fetchall()]
        cur.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'inlet-event' AND sent_at IS NULL")
        pending = cur.fetchone()
    conn.close()
    assert counts and set(counts) == {1}
    assert pending == (0,)
