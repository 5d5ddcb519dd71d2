"""Real Rucio activity drives the built-in handlers through hermes, ActiveMQ and ``inlet listen``.

A run's raw dataset gets a rule with ``notify=Y`` on an RSE that already holds its files, so
the judge marks it OK at once and hermes emits ``rule_ok`` and ``datasetlock_ok``; those go
through the broker's composite topic into the listener's real queue. Until the conveyor can
copy to the S3 RSE, the test names SITE_A_DISK as the "S3" class of RSEs
(``[listener] s3_rses``): the handler's path (Rucio lookup of the rule's RSEs, per-RSE file
times, the run's transition) is the same one a copy to S3 takes.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import stomp
from sqlalchemy import select

from inlet.catalog import Run, RunState, open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.catalog.models import FileAvailability, RunFile
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.services.base import venv_bin

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


@pytest.fixture
def catalog(lake: Lake) -> Iterator[tuple[str, Catalog]]:
    port = lake.settings.lake.mariadb_port
    db = f"listener_rucio_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=port, user="inlet", password="inlet-secret", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    url = f"mysql+pymysql://inlet:inlet-secret@127.0.0.1:{port}/{db}"
    cat = open_catalog(url)
    yield url, cat
    cat.dispose()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


class _Collect(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.bodies: queue.Queue[dict[str, object]] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.bodies.put(json.loads(frame.body))

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])


def test_rule_ok_and_datasetlock_ok_move_the_run_and_release_the_daq_copies(
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
    collect = _Collect()
    sub = stomp.Connection12([(b.host, b.stomp_port)])
    sub.set_listener("c", collect)
    sub.connect(b.username, b.password, wait=True)
    sub.subscribe(b.inlet_topic, id="release", ack="auto", headers={"receipt": "sub"})
    assert collect.receipts.get(timeout=30) == "sub"

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
            tape_rses = ["TAPE"]
            metrics_port = {metrics_port}
            """
        )
    )
    env = {**rucio_env, "INLET_CONFIG": str(config), "INLET_CATALOG__URL": url}
    log = tmp_path / "listener.log"
    with log.open("wb") as out:
        listener = subprocess.Popen([venv_bin("inlet"), "-v", "listen"], env=env, stdout=out, stderr=out)
    try:
        res = subprocess.run(
            [sys.executable, "-c", SETUP_RUCIO, json.dumps({
                "paths": [str(tmp_path / n) for n in names], "names": names, "dataset": dataset})],
            env=rucio_env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]

        def on_s3() -> bool:
            with cat.session() as s:
                return catalog_runs.get_run(s, "test", run_number).state == RunState.ON_S3

        # Bounds a hang only: hermes and the judge run every [lake] daemon_sleep seconds.
        assert wait_until(on_s3, 120), log.read_text(errors="replace")[-4000:]
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
            assert moves[-1] == ("UPLOADED", "ON_S3")
            assert run.transitions[-1].reason == "all 2 files on SITE_A_DISK"

        released: dict[str, dict[str, object]] = {}
        while set(released) != set(names):
            body = collect.bodies.get(timeout=120)
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
        sub.disconnect()
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
    # Each handler applied each Rucio event once: the ledger holds one row per (handler, event).
    conn = pymysql.connect(host="127.0.0.1", port=lake.settings.lake.mariadb_port, user="inlet",
                           password="inlet-secret", database=url.rsplit("/", 1)[1])  # fmt: skip
    with conn.cursor() as cur:
        cur.execute("SELECT consumer, event_key, COUNT(*) FROM processed_events GROUP BY consumer, event_key")
        counts = [r[2] for r in cur.fetchall()]
        cur.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'inlet-event' AND sent_at IS NULL")
        pending = cur.fetchone()
    conn.close()
    assert counts and set(counts) == {1}
    assert pending == (0,)
