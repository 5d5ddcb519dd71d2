"""Events are trusted only as far as their publisher (issue 13): one broker login per role,
enforced by ActiveMQ's authorization plugin, and a Rucio check before an irreversible step.

- readers (analysts, the rehearsal's downloader) may read both topics and publish nothing;
- hermes may publish Rucio's topic only;
- inlet's services publish inlet's topic and use the queues;
- a well-formed but false ``transfer-done``, even from inlet's own login, does not put a run
  ON_TAPE: the listener asks Rucio first.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from inlet.catalog import RunState
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.services.base import venv_bin
from inlet.listener.dlq import DeadLetterQueue
from inlet.messaging import BrokerUnavailable, Connection, Role, Subscription


def send_as(lake: Lake, role: Role, destination: str, body: str, headers: dict[str, str]) -> str:
    """Publish once with that role's login; returns "RECEIPT" or the broker's ERROR message."""
    try:
        with Connection(lake.settings.broker, role=role) as conn:
            conn.send(destination, body, headers)
    except BrokerUnavailable as exc:
        return exc.broker_error or exc.problem
    return "RECEIPT"


def forged_transfer_done(scope: str, name: str, rse: str) -> str:
    return json.dumps(
        {
            "event_type": "transfer-done",
            "payload": {
                "scope": scope,
                "name": name,
                "dst-rse": rse,
                "request-id": uuid.uuid4().hex,
                "transferred_at": "2026-11-21 10:00:00",
            },
            "created_at": "2026-11-21 10:00:01",
        }
    )


def in_queue(lake: Lake, destination: str, marker: str) -> bool:
    """Browse (without consuming) ``destination`` for a message whose body holds ``marker``."""
    settings = lake.settings.listener.model_copy(update={"dlq": destination})
    return any(marker.encode() in letter.body for letter in DeadLetterQueue(lake.settings.broker, settings).letters())


def test_a_reader_can_subscribe_but_publish_on_neither_topic(lake: Lake) -> None:
    b = lake.settings.broker
    for dest in (b.rucio_topic, b.inlet_topic, lake.settings.listener.rucio_queue):
        answer = send_as(lake, "reader", dest, "{}", {})
        assert answer.startswith(f"User {b.reader_username} is not authorized to write"), (dest, answer)
    # Reading is what a reader is for: the broker confirms both subscriptions.
    subs = [Subscription(b.rucio_topic, id="1"), Subscription(b.inlet_topic, id="2")]
    with Connection(b, role="reader", subscriptions=subs) as conn:
        assert conn.is_connected()


def test_hermes_publishes_rucios_topic_only(lake: Lake) -> None:
    b = lake.settings.broker
    answer = send_as(lake, "hermes", b.inlet_topic, "{}", {})
    assert answer.startswith(f"User {b.hermes_username} is not authorized to write"), answer
    answer = send_as(lake, "hermes", lake.settings.listener.inlet_queue, "{}", {})
    assert "not authorized to write" in answer
    # inlet's services cannot speak for Rucio either.
    answer = send_as(lake, "inlet", b.rucio_topic, "{}", {})
    assert answer.startswith(f"User {b.username} is not authorized to write"), answer
    # What hermes may do, it can (the lake's real hermes logs in with this account).
    noop = json.dumps({"event_type": "inlet-test-noop", "payload": {}, "created_at": "2026-11-21 10:00:00"})
    assert send_as(lake, "hermes", b.rucio_topic, noop, {}) == "RECEIPT"


def test_a_forged_transfer_done_from_a_reader_never_reaches_the_listener(lake: Lake) -> None:
    b, ls = lake.settings.broker, lake.settings.listener
    marker = f"forged-{uuid.uuid4().hex}"
    body = forged_transfer_done("test", marker, "TAPE")
    for dest in (b.rucio_topic, b.inlet_topic, ls.rucio_queue, ls.inlet_queue):
        answer = send_as(lake, "reader", dest, body, {"event_type": "transfer-done"})
        assert "not authorized to write" in answer, (dest, answer)
    # The listener's queues (where the composite topics forward to) never got it.
    assert not in_queue(lake, ls.rucio_queue, marker)
    assert not in_queue(lake, ls.inlet_queue, marker)


UPLOAD = """
import sys
from rucio.client import Client
from rucio.client.uploadclient import UploadClient
UploadClient(Client()).upload([{"path": sys.argv[1], "rse": "SITE_A_DISK", "did_scope": "test"}])
"""


def test_a_forged_transfer_done_from_inlets_own_login_does_not_put_a_run_on_tape(
    lake: Lake, rucio_env: dict[str, str], catalog: tuple[str, Catalog], tmp_path: Path
) -> None:
    url, cat = catalog
    run_number = int.from_bytes(os.urandom(3), "big") % 900_000 + 100_000
    name = f"run{run_number}_000.dat"
    (tmp_path / name).write_bytes(os.urandom(1024))
    # A real file in Rucio, on disk only (SITE_A_DISK), not on tape.
    res = subprocess.run(
        [sys.executable, "-c", UPLOAD, str(tmp_path / name)], env=rucio_env, capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stderr[-3000:]

    def register(session: object) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        run = catalog_runs.upsert_run(session, "test", run_number, scope="test", dataset=f"run{run_number}_raw")
        catalog_runs.add_file(session, run, "test", name, 1024)
        for state in (RunState.CLOSED, RunState.UPLOADED, RunState.ON_S3):
            catalog_runs.transition(session, run, state)

    cat.transaction(register)
    config = tmp_path / "inlet.toml"
    config.write_text(
        textwrap.dedent(f"""
        [listener]
        consumer = "roles-{uuid.uuid4().hex[:8]}"
        tape_rses = ["TAPE"]
        metrics_port = 0
        """)
    )
    env = {**rucio_env, "INLET_CONFIG": str(config), "INLET_CATALOG__URL": url}
    log = tmp_path / "listener.log"
    with log.open("wb") as out:
        listener = subprocess.Popen([venv_bin("inlet"), "-v", "listen"], env=env, stdout=out, stderr=out)
    try:
        assert wait_until(lambda: "subscribed to" in log.read_text(errors="replace"), 60), log.read_text()
        # The most a forger with inlet's login can do: write straight into the listener's Rucio queue.
        body = forged_transfer_done("test", name, "TAPE")
        answer = send_as(lake, "inlet", lake.settings.listener.rucio_queue, body, {"event_type": "transfer-done"})
        assert answer == "RECEIPT"
        assert wait_until(lambda: "a forged or premature event?" in " ".join(log.read_text().split()), 120), (
            log.read_text(errors="replace")[-3000:]
        )
        with cat.session() as s:
            assert catalog_runs.get_run(s, "test", run_number).state == RunState.ON_S3
        assert listener.poll() is None
    finally:
        listener.terminate()
        listener.wait(timeout=60)


@pytest.mark.parametrize("command", [["listen"], ["events", "dlq", "list"], ["events", "publish", "x"]])
def test_a_wrong_broker_password_or_an_absent_broker_is_one_line_that_says_which(
    lake: Lake, tmp_path: Path, command: list[str]
) -> None:
    env = {**os.environ, **lake.exports(), "INLET_CATALOG__URL": f"sqlite:///{tmp_path / 'c.db'}", "COLUMNS": "400"}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        absent = free.getsockname()[1]
    cases = {
        "refused": ({"INLET_BROKER__PASSWORD": "wrong"}, "refused the login of 'inlet'"),
        "absent": ({"INLET_BROKER__STOMP_PORT": str(absent)}, f"cannot reach the broker at 127.0.0.1:{absent}"),
    }
    for what, (override, expected) in cases.items():
        res = subprocess.run(
            [venv_bin("inlet"), *command], env={**env, **override}, capture_output=True, text=True, timeout=120
        )
        assert res.returncode != 0, (what, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("inlet: error: "), (what, res.stderr)
        assert expected in lines[0], (what, lines[0])
        fix = "check [broker] username/password" if what == "refused" else "correct [broker] host/stomp_port"
        assert f"(fix: {fix}" in lines[0] or fix in lines[0], (what, lines[0])
        assert "Traceback" not in res.stderr
