"""What an operator sees of the uploader: the worker's Prometheus endpoint, `inlet uploader status`,
and the quarantine alarm (a ``file-quarantined`` event on the inlet topic that the listener's
default routes turn into a webhook post). A real worker, broker, listener and lake throughout;
the metrics are scraped over HTTP, the status read through the CLI, the event off the topic.
"""

from __future__ import annotations

import http.server
import json
import random
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from inlet.lake.lake import Lake
from tests.integration.conftest import BIN, Topic, UploaderEnv, daq_files, inlet, queue_batch, wait_for

SIZE = 3000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def env(uploader_env: UploaderEnv) -> dict[str, str]:
    env = uploader_env("obs", metrics_port=free_port())
    redis.Redis.from_url(env["INLET_REDIS__URL"]).flushdb()  # the status counters of this module start from zero
    return env


@pytest.fixture(scope="module")
def worker(env: dict[str, str], celery_worker: Callable[..., subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    # Two pool processes: the endpoint must sum what both observed.
    return celery_worker(env, f"obs-{uuid.uuid4().hex[:6]}", concurrency=2, ready=b"uploader metrics on")


def scrape(env: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """sample name and labels -> value, from the worker's endpoint over HTTP."""
    text = requests.get(f"http://127.0.0.1:{env['INLET_UPLOADER__METRICS_PORT']}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "pid"))
            out[(s.name, labels)] = float(s.value)
    return out


def metric(sample: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sample.get((name, tuple(sorted(labels.items()))), 0.0)


def status(env: dict[str, str]) -> dict[str, Any]:
    res = inlet(env, "uploader", "status")
    assert res.returncode == 0, res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_status_reports_queued_batches_while_no_worker_runs(env: dict[str, str], tmp_path: Path) -> None:
    idle = {**env, "INLET_UPLOADER__QUEUE": f"inlet.upload.idle-{uuid.uuid4().hex[:8]}"}
    before = status(idle)
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path, run, 3, size=SIZE)
    res = inlet(idle, "upload", *map(str, files), "--run", str(run), "--batch-size", "1", "--no-wait")
    assert res.returncode == 0, res.stderr
    try:
        after = status(idle)
        assert after["queue"] == idle["INLET_UPLOADER__QUEUE"]
        assert after["queued"] == 3
        assert after["waiting_for_tokens"] == 0
        # Nothing ran: the totals did not move.
        assert (after["registered_total"], after["errors_total"]) == (
            before["registered_total"],
            before["errors_total"],
        )
        assert after["rse_slots_in_use"] == {"SITE_A_DISK": 0}
    finally:
        redis.Redis.from_url(idle["INLET_REDIS__URL"]).delete(idle["INLET_UPLOADER__QUEUE"])


def test_metrics_endpoint_and_status_count_an_upload(
    env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    m0, s0 = scrape(env), status(env)
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path, run, 3, size=SIZE)
    res = inlet(env, "upload", *map(str, files), "--run", str(run), "--batch-size", "1", timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["registered"] == 3
    # The worker observes a batch after its result is computed, right before it returns it.
    m1 = wait_for(
        "the third batch observed",
        lambda: (
            (m := scrape(env))
            and metric(m, "inlet_uploader_batch_seconds_count") - metric(m0, "inlet_uploader_batch_seconds_count") == 3
            and m
        ),
    )

    def moved(name: str, **labels: str) -> float:
        return metric(m1, name, **labels) - metric(m0, name, **labels)

    assert moved("inlet_uploader_files_total") == 3
    assert moved("inlet_uploader_bytes_total") == 3 * SIZE
    assert moved("inlet_uploader_latency_seconds_count", since="closed") == 3
    assert moved("inlet_uploader_latency_seconds_count", since="submitted") == 3
    assert moved("inlet_uploader_latency_seconds_bucket", since="submitted", le="+Inf") == 3
    assert moved("inlet_uploader_errors_total", kind="failed") == 0
    assert moved("inlet_uploader_errors_total", kind="quarantined") == 0

    s1 = status(env)
    assert s1["queued"] == 0
    assert s1["waiting_for_tokens"] == 0
    assert s1["registered_total"] - s0["registered_total"] == 3
    assert s1["errors_total"] == s0["errors_total"]
    # Three one-file grants, all within the minute the upload took.
    assert s1["files_per_s_last_minute"] >= 3 / 60


class _Hook(http.server.BaseHTTPRequestHandler):
    posts: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).posts.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    posts: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"posts": posts})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", posts
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener(
    lake: Lake, env: dict[str, str], webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> Iterator[Path]:
    tag = uuid.uuid4().hex[:8]
    log = tmp_path / "listener.log"
    lenv = {
        **env,
        "INLET_LISTENER__ALARMS__WEBHOOK_URL": webhook[0],
        "INLET_LISTENER__CONSUMER": f"it-obs-{tag}",
        # Rucio's events are not this test's business: a queue nothing feeds.
        "INLET_LISTENER__RUCIO_QUEUE": f"/queue/test.obs.{tag}.rucio",
        "INLET_LISTENER__ALARMS__RULE_CHECK_INTERVAL": "0",
        # Earlier tests (test_hostile_uploader) leave dozens of quarantine alarms on the inlet queue:
        # the shared rate limit must not hold back the one this test waits for.
        "INLET_LISTENER__ALARMS__RATE_LIMIT": "100000",
    }
    proc = subprocess.Popen(
        [str(BIN / "inlet"), "-v", "listen"], env=lenv, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_for(
            "the listener to subscribe",
            lambda: "subscribed to" in log.read_text(errors="replace") or proc.poll() is not None,
            120,
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_quarantined_file_raises_an_event_and_the_listeners_webhook_alarm(
    lake: Lake,
    env: dict[str, str],
    worker: subprocess.Popen[bytes],
    webhook: tuple[str, list[dict[str, Any]]],
    listener: Path,
    tmp_path: Path,
) -> None:
    b = lake.settings.broker
    topic = Topic(b, b.inlet_topic).open()
    m0, s0 = scrape(env), status(env)
    run = random.randint(100_000, 999_999)
    bad = tmp_path / f"run{run:06d}-oops.dat"
    bad.write_bytes(b"z" * 10)
    # What `inlet watch` does: queue without the client-side name check, so the worker refuses it.
    assert str(bad) in queue_batch(env, [{"path": str(bad)}], run)["quarantined"]
    try:
        (ev,) = wait_for(
            "the file-quarantined event on the inlet topic",
            lambda: [
                d for d in topic.docs if d["event_type"] == "file-quarantined" and d["payload"]["source"] == str(bad)
            ],
            60,
        )
    finally:
        topic.close()
    p = ev["payload"]
    assert (p["kind"], p["run"], p["stream"], p["experiment"], p["name"]) == ("bad-name", run, "raw", "cygno", bad.name)
    assert "breaks the naming schema" in p["reason"]
    assert p["moved_to"] == str(Path(env["INLET_UPLOADER__QUARANTINE_DIR"]) / bad.name)
    assert ev["id"].startswith("file-quarantined:") and ev["created_at"]

    # The listener's default routes hand it to the alarm handler, which posts to the webhook.
    posts = webhook[1]
    (post,) = wait_for("the alarm on the webhook", lambda: [x for x in posts if bad.name in x["text"]], 120)
    assert "quarantined" in post["text"] and "bad-name" in post["text"]

    m1 = wait_for(
        "the quarantine counted",
        lambda: (
            (m := scrape(env))
            and metric(m, "inlet_uploader_errors_total", kind="quarantined")
            > metric(m0, "inlet_uploader_errors_total", kind="quarantined")
            and m
        ),
    )
    assert (
        metric(m1, "inlet_uploader_errors_total", kind="quarantined")
        - metric(m0, "inlet_uploader_errors_total", kind="quarantined")
        == 1
    )
    assert status(env)["errors_total"] - s0["errors_total"] == 1
