"""The listener against the real broker and a real MariaDB catalogue, with failures injected.

Each test runs real ``inlet listen`` processes on queues of its own, with a probe handler
installed the way an experiment installs one (an ``inlet.handlers`` entry point in a
package on the path). The probe's effect is a row in ``probe_effects``; without a unique
key there, a second application of an event would show as a second row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pymysql
import pytest

from inlet.catalog.db import upgrade
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.services.base import venv_bin
from inlet.listener.dlq import DeadLetterQueue, DLQError
from inlet.messaging import BrokerUnavailable, Connection

PROBE_MODULE = '''
"""A test handler: records its effect, and misbehaves on request."""
import os
import time
from pathlib import Path

from sqlalchemy import event as sa_event, text


class Probe:
    name = "probe"

    def __init__(self, settings, options):
        self.instance = os.environ.get("PROBE_INSTANCE", "?")

    def handle(self, event, ctx):
        p = event.payload
        ctx.session.execute(
            text("INSERT INTO probe_effects (event_id, instance) VALUES (:e, :i)"),
            {"e": event.id or event.key, "i": self.instance},
        )
        marker = Path(p["marker"]) if p.get("marker") else None
        first = marker is not None and not marker.exists()
        if first:
            marker.write_text(str(os.getpid()))
        action = p.get("action")
        if action == "sleep-once" and first:
            time.sleep(float(p.get("seconds", 60)))
        elif action == "die-after-commit" and first:
            # Dies after the catalogue commit and before the broker ack (after_commit also
            # fires when a savepoint is released, so wait for the end of the outer transaction).
            root = ctx.session.get_transaction()
            sa_event.listen(
                ctx.session, "after_transaction_end", lambda s, t: t is root and os._exit(9)
            )
        elif action == "die":
            os._exit(9)  # a message that kills the process whenever it is handled
        elif action == "fail-until" and not Path(p["file"]).exists():
            raise RuntimeError("probe told to fail until " + p["file"] + " exists")
        elif action == "sleep":
            time.sleep(float(p.get("seconds", 0.01)))


def make(settings, options):
    return Probe(settings, options)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe-plugin")
    (root / "inlet_probe.py").write_text(PROBE_MODULE)
    dist = root / "inlet_probe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: inlet-probe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[inlet.handlers]\nprobe = inlet_probe:make\n")
    return root


@pytest.fixture
def catalog_url(lake: Lake) -> Iterator[str]:
    """A fresh catalogue database per test: ledgers, outboxes and rate limits never mix."""
    port = lake.settings.lake.mariadb_port
    db = f"listener_it_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=port, user="inlet", password="inlet-secret", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(
            f"CREATE TABLE {db}.probe_effects (id INT AUTO_INCREMENT PRIMARY KEY, "
            "event_id VARCHAR(255) NOT NULL, instance VARCHAR(32) NOT NULL)"
        )
    url = f"mysql+pymysql://inlet:inlet-secret@127.0.0.1:{port}/{db}"
    # Migrated once up front, as `inlet lake up` does: two listeners starting together on an
    # empty database would otherwise both run the first migration.
    upgrade(url)
    yield url
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    db = url.rsplit("/", 1)[1]
    port = int(url.split("@127.0.0.1:")[1].split("/")[0])
    conn = pymysql.connect(host="127.0.0.1", port=port, user="inlet", password="inlet-secret", database=db)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params or None)
            return list(cur.fetchall())
    finally:
        conn.close()


@dataclass
class Setup:
    """One test's private queues, configuration and listener processes."""

    lake: Lake
    catalog_url: str
    plugin_path: Path
    tmp: Path
    extra_toml: str = ""
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_of: dict[int, Path] = field(default_factory=dict)

    @property
    def queue(self) -> str:
        return f"/queue/test.listener.{self.tag}"

    @property
    def dlq(self) -> str:
        return f"/queue/test.listener.{self.tag}.dlq"

    def env(self, instance: str = "a", **overrides: str) -> dict[str, str]:
        config = self.tmp / f"inlet-{self.tag}.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                [listener]
                rucio_queue = "/queue/test.listener.{self.tag}.rucio"
                inlet_queue = "{self.queue}"
                dlq = "{self.dlq}"
                consumer = "it-{self.tag}"
                handler_attempts = 3
                retry_backoff = 0.1
                heartbeat_ms = 2000
                reconnect_initial = 0.2
                reconnect_max = 2.0
                """
            )
            + self.extra_toml
            + textwrap.dedent(
                """
                [[listener.routes]]
                handler = "probe"
                event_types = ["probe-*"]
                """
            )
        )
        env = {
            **os.environ,
            **self.lake.exports(),
            "INLET_CONFIG": str(config),
            "INLET_CATALOG__URL": self.catalog_url,
            # The probe plugin first, then whatever the caller had (a worktree's own inlet, say).
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.plugin_path), os.environ.get("PYTHONPATH")])),
            "PROBE_INSTANCE": instance,
        }
        env.update(overrides)
        return env

    def start(self, instance: str = "a", **overrides: str) -> subprocess.Popen[bytes]:
        path = self.tmp / f"listener-{self.tag}-{instance}-{len(self.procs)}.log"
        with path.open("wb") as log:
            proc = subprocess.Popen(
                [venv_bin("inlet"), "-v", "listen"], env=self.env(instance, **overrides), stdout=log, stderr=log
            )
        self.procs.append(proc)
        self.log_of[proc.pid] = path
        return proc

    def wait_subscribed(self, proc: subprocess.Popen[bytes]) -> None:
        log = self.log_of[proc.pid]
        ok = wait_until(lambda: "subscribed to" in log.read_text(errors="replace") or proc.poll() is not None, 60)
        assert ok and proc.poll() is None, self.logs()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob(f"listener-{self.tag}-*")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([venv_bin("inlet"), *args], env=self.env(), capture_output=True, text=True, timeout=60)


@pytest.fixture
def setup(lake: Lake, catalog_url: str, plugin_path: Path, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(lake, catalog_url, plugin_path, tmp_path)
    yield s
    s.stop_all()


class Publisher:
    """Sends persistent messages and waits for the broker's receipt of each."""

    def __init__(self, lake: Lake) -> None:
        self.conn = Connection(lake.settings.broker)

    def send(self, destination: str, body: str | bytes, retry_until: float = 0.0) -> None:
        """Send once; with ``retry_until`` (a monotonic deadline) retry through broker outages."""
        while True:
            try:
                if not self.conn.is_connected():
                    self.conn.connect()
                self.conn.send(destination, body)
                return
            except BrokerUnavailable:
                self.conn.close()
                if time.monotonic() > retry_until:
                    raise
                time.sleep(0.3)

    def close(self) -> None:
        self.conn.close()


def probe_event(event_id: str, **payload: Any) -> str:
    return json.dumps(
        {"event_type": "probe-test", "payload": payload, "created_at": "2026-11-21T00:00:00+00:00", "id": event_id}
    )


def effects(url: str, prefix: str = "") -> dict[str, int]:
    rows = sql(
        url, "SELECT event_id, COUNT(*) FROM probe_effects WHERE event_id LIKE %s GROUP BY event_id", prefix + "%"
    )
    return {str(r[0]).split(":", 1)[-1]: int(r[1]) for r in rows}


def queue_depth(lake: Lake, destination: str) -> int:
    settings = lake.settings.listener.model_copy(update={"dlq": destination})
    return len(DeadLetterQueue(lake.settings.broker, settings).letters())


def until(cond: Callable[[], bool], timeout: float = 90) -> bool:
    # The timeout only bounds a hang; what is asserted is the state reached.
    return wait_until(cond, timeout)


def test_killed_in_the_middle_of_a_handler_the_event_is_redelivered_and_applied_once(
    setup: Setup, tmp_path: Path
) -> None:
    pub = Publisher(setup.lake)
    marker = tmp_path / "in-handler"
    proc = setup.start()
    setup.wait_subscribed(proc)
    pub.send(setup.queue, probe_event(f"{setup.tag}-1", action="sleep-once", seconds=120, marker=str(marker)))
    assert until(marker.exists), setup.logs()
    proc.kill()  # SIGKILL inside the handler, before its transaction commits
    proc.wait()
    assert effects(setup.catalog_url, setup.tag) == {}
    again = setup.start()
    assert until(lambda: effects(setup.catalog_url, setup.tag) == {f"{setup.tag}-1": 1}), setup.logs()
    setup.stop_all()
    assert again.returncode == 0
    assert queue_depth(setup.lake, setup.queue) == 0
    pub.close()


def test_killed_after_commit_before_ack_the_redelivery_is_recognised(setup: Setup, tmp_path: Path) -> None:
    pub = Publisher(setup.lake)
    marker = tmp_path / "committed"
    proc = setup.start()
    setup.wait_subscribed(proc)
    pub.send(setup.queue, probe_event(f"{setup.tag}-1", action="die-after-commit", marker=str(marker)))
    assert proc.wait(timeout=90) == 9, setup.logs()  # died between the commit and the ack
    assert effects(setup.catalog_url, setup.tag) == {f"{setup.tag}-1": 1}
    assert queue_depth(setup.lake, setup.queue) == 1  # not acknowledged: still on the broker
    setup.start()
    assert until(lambda: queue_depth(setup.lake, setup.queue) == 0), setup.logs()
    setup.stop_all()
    assert effects(setup.catalog_url, setup.tag) == {f"{setup.tag}-1": 1}
    ledger = sql(
        setup.catalog_url, "SELECT COUNT(*) FROM processed_events WHERE consumer = %s", f"it-{setup.tag}:probe"
    )
    assert ledger == [(1,)]
    pub.close()


def test_sigterm_finishes_the_event_in_hand_and_hands_the_rest_back(setup: Setup, tmp_path: Path) -> None:
    pub = Publisher(setup.lake)
    marker = tmp_path / "in-handler"
    proc = setup.start()
    setup.wait_subscribed(proc)
    pub.send(setup.queue, probe_event(f"{setup.tag}-slow", action="sleep-once", seconds=3, marker=str(marker)))
    assert until(marker.exists), setup.logs()
    for i in range(5):
        pub.send(setup.queue, probe_event(f"{setup.tag}-{i}"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, setup.logs()
    done = effects(setup.catalog_url, setup.tag)
    assert done.get(f"{setup.tag}-slow") == 1  # finished, not half-applied
    assert set(done.values()) == {1}
    # What was not handled is still on the broker; a new listener applies it, once.
    setup.start()
    expected = {f"{setup.tag}-slow": 1, **{f"{setup.tag}-{i}": 1 for i in range(5)}}
    assert until(lambda: effects(setup.catalog_url, setup.tag) == expected), setup.logs()
    pub.close()


def test_two_instances_share_the_events_and_handle_each_once(setup: Setup) -> None:
    setup.extra_toml = "prefetch = 1\nbatch_size = 1\n"
    pub = Publisher(setup.lake)
    a = setup.start("a")
    b = setup.start("b")
    setup.wait_subscribed(a)
    setup.wait_subscribed(b)
    ids = [f"{setup.tag}-{i}" for i in range(60)]
    for event_id in ids:
        pub.send(setup.queue, probe_event(event_id, action="sleep", seconds=0.02))
    assert until(lambda: len(effects(setup.catalog_url, setup.tag)) == len(ids)), setup.logs()
    assert effects(setup.catalog_url, setup.tag) == dict.fromkeys(ids, 1)
    per_instance = dict(sql(setup.catalog_url, "SELECT instance, COUNT(*) FROM probe_effects GROUP BY instance"))
    assert set(per_instance) == {"a", "b"}, per_instance
    pub.close()


def test_broker_restart_while_events_flow_loses_none_and_applies_none_twice(setup: Setup) -> None:
    amq = setup.lake.groups()["activemq"][0]
    pub = Publisher(setup.lake)
    proc = setup.start()
    setup.wait_subscribed(proc)
    ids = [f"{setup.tag}-{i}" for i in range(400)]
    sent: list[str] = []

    def produce() -> None:
        for event_id in ids:
            pub.send(setup.queue, probe_event(event_id), retry_until=time.monotonic() + 120)
            sent.append(event_id)
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    producer.start()
    assert until(lambda: len(effects(setup.catalog_url, setup.tag)) >= 50), setup.logs()
    amq.proc.stop()  # the lake's own broker process, by its pid file
    amq.start()
    assert wait_until(amq.ready, 90)
    producer.join(timeout=300)
    assert sent == ids
    assert until(lambda: len(effects(setup.catalog_url, setup.tag)) == len(ids), 180), setup.logs()
    assert effects(setup.catalog_url, setup.tag) == dict.fromkeys(ids, 1)
    assert proc.poll() is None, "the listener must survive the broker restart"
    assert "lost the broker connection" in setup.log_of[proc.pid].read_text(errors="replace")
    pub.close()


def test_poison_messages_go_to_the_dlq_with_the_reason_and_replay_works(setup: Setup, tmp_path: Path) -> None:
    pub = Publisher(setup.lake)
    proc = setup.start()
    setup.wait_subscribed(proc)
    gate = tmp_path / "fixed"
    pub.send(setup.queue, "{not json")
    pub.send(setup.queue, json.dumps({"event_type": "probe-test", "payload": {}}))
    pub.send(setup.queue, json.dumps({"event_type": "probe-test", "payload": {}, "created_at": "x", "extra": 1}))
    pub.send(setup.queue, "x" * 300_000)
    pub.send(setup.queue, probe_event(f"{setup.tag}-flaky", action="fail-until", file=str(gate)))
    pub.send(setup.queue, probe_event(f"{setup.tag}-fine"))
    assert until(lambda: queue_depth(setup.lake, setup.dlq) == 5), setup.logs()
    assert proc.poll() is None, "poison must not crash the listener"
    assert effects(setup.catalog_url, setup.tag) == {f"{setup.tag}-fine": 1}

    listed = setup.cli("events", "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]
    reasons = {r[4] for r in rows}
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert any(r.startswith("missing field(s) created_at") for r in reasons)
    assert any(r.startswith("unknown field(s) extra") for r in reasons)
    assert any(r.startswith("oversized body: 300000 bytes") for r in reasons)
    flaky = next(r for r in rows if r[3] == "probe")
    assert "handler probe failed 3 times" in flaky[4]
    malformed = next(r for r in rows if r[4].startswith("malformed JSON"))

    dlq = DeadLetterQueue(
        setup.lake.settings.broker, setup.lake.settings.listener.model_copy(update={"dlq": setup.dlq})
    )
    shown = dlq.show(malformed[0][:8])
    assert shown.body == b"{not json" and shown.source == setup.queue

    # Fix the cause, then replay: the handler now succeeds, once.
    gate.write_text("ok")
    replayed = setup.cli("events", "dlq", "replay", flaky[0])
    assert replayed.returncode == 0, replayed.stderr
    fixed = tmp_path / "fixed.json"
    fixed.write_text(probe_event(f"{setup.tag}-was-malformed"))
    replayed = setup.cli("events", "dlq", "replay", malformed[0], "--body", str(fixed))
    assert replayed.returncode == 0, replayed.stderr
    expected = {f"{setup.tag}-fine": 1, f"{setup.tag}-flaky": 1, f"{setup.tag}-was-malformed": 1}
    assert until(lambda: effects(setup.catalog_url, setup.tag) == expected), setup.logs()
    assert queue_depth(setup.lake, setup.dlq) == 3

    with pytest.raises(DLQError, match="names 0 messages"):
        dlq.replay(["0123456789abcdef"])
    pub.close()


class _Receiver(BaseHTTPRequestHandler):
    posts: list[tuple[dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts.append((dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[type[_Receiver]]:
    class Receiver(_Receiver):
        posts: list[tuple[dict[str, str], dict[str, Any]]] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    yield Receiver
    server.shutdown()


def test_alarms_reach_the_webhook_deduplicated_and_rate_limited(setup: Setup, webhook: Any) -> None:
    setup.extra_toml = textwrap.dedent(
        f"""
        [listener.alarms]
        webhook_url = "{webhook.url}"
        rate_limit = 2
        rate_period = 3600
        dedup_window = 3600
        # Rules stuck elsewhere in the shared lake must not take this test's alarm budget.
        rule_check_interval = 0

        [[listener.routes]]
        handler = "alarms"
        event_types = ["transfer-failed"]
        """
    )
    pub = Publisher(setup.lake)
    proc = setup.start()
    setup.wait_subscribed(proc)

    def failed(name: str) -> str:
        return json.dumps(
            {
                "event_type": "transfer-failed",
                "payload": {
                    "scope": "test",
                    "name": name,
                    "dst-rse": "S3",
                    "src-rse": "SITE_A_DISK",
                    "reason": "SOURCE CHECKSUM MISMATCH",
                    "tag": setup.tag,
                },
                "created_at": "2026-11-21 23:00:00.000001",
                "id": uuid.uuid4().hex,
            }
        )

    # The same failure twice (two distinct events): one alarm.
    pub.send(setup.queue, failed(f"{setup.tag}-a.dat"))
    pub.send(setup.queue, failed(f"{setup.tag}-a.dat"))
    assert until(lambda: len(webhook.posts) == 1), setup.logs()
    # Four more distinct failures: the rate limit (2 per window) lets one more through.
    for n in "bcde":
        pub.send(setup.queue, failed(f"{setup.tag}-{n}.dat"))

    def settled() -> bool:
        rows = sql(setup.catalog_url, "SELECT COUNT(*) FROM outbox WHERE kind LIKE 'webhook%' AND sent_at IS NULL")
        total = sql(setup.catalog_url, "SELECT COUNT(*) FROM outbox WHERE kind LIKE 'webhook%'")
        return rows == [(0,)] and total == [(5,)]

    assert until(settled), setup.logs()
    assert len(webhook.posts) == 2
    _, body = webhook.posts[0]
    assert f"{setup.tag}-a.dat" in body["content"] and body["content"] == body["text"]
    assert "SOURCE CHECKSUM MISMATCH" in body["content"]
    keys = [h["Idempotency-Key"] for h, _ in webhook.posts]
    assert len(set(keys)) == 2 and all(k.startswith("alarm:") for k in keys)
    suppressed = sql(setup.catalog_url, "SELECT COUNT(*) FROM outbox WHERE kind = 'webhook-suppressed'")
    assert suppressed == [(3,)]
    pub.close()
