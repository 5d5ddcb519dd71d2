"""The lake is real: the standard clients of each service work against it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import uuid
from pathlib import Path

import stomp
from rucio_inlet.checksums import file_adler32

from inlet.lake.lake import Lake
from inlet.lake.services.base import venv_bin
from inlet.lake.services.s3 import S3Endpoint

RSES = {"SITE_A_DISK", "S3", "TAPE", "SITE_B_DISK"}


def rucio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([venv_bin("rucio"), *args], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"rucio {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_inlet_lake_env_lets_the_rucio_cli_whoami(lake: Lake) -> None:
    out = subprocess.run(
        [venv_bin("inlet"), "lake", "env"], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    res = rucio(env, "whoami")
    assert "account    : root" in res.stdout


def test_rucio_cli_lists_the_four_rses(rucio_env: dict[str, str]) -> None:
    listed = set(rucio(rucio_env, "rse", "list").stdout.split())
    assert listed >= RSES
    tape = rucio(rucio_env, "rse", "show", "TAPE").stdout
    assert "TAPE" in tape and "rse_type" in tape


def test_upload_to_site_a_and_download_back_with_same_adler32(rucio_env: dict[str, str], tmp_path: Path) -> None:
    name = f"roundtrip-{uuid.uuid4().hex[:10]}.dat"
    src = tmp_path / name
    src.write_bytes(os.urandom(300_000))
    rucio(rucio_env, "upload", "--rse", "SITE_A_DISK", "--scope", "test", str(src))
    # `rucio upload` exits 0 even on failure: the replica list is the proof it landed.
    replicas = rucio(rucio_env, "replica", "list", "file", f"test:{name}").stdout
    assert "SITE_A_DISK" in replicas
    rucio(rucio_env, "download", "--dir", str(tmp_path / "down"), f"test:{name}")
    got = tmp_path / "down" / "test" / name
    assert file_adler32(got) == file_adler32(src)


class _Collector(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[dict[str, str], dict[str, object]]] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.messages.put((frame.headers, json.loads(frame.body)))

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers.get("receipt-id", ""))


def test_rule_with_notify_produces_a_hermes_event_on_activemq(
    lake: Lake, rucio_env: dict[str, str], tmp_path: Path
) -> None:
    b = lake.settings.broker
    collector = _Collector()
    conn = stomp.Connection([(b.host, b.stomp_port)])
    conn.set_listener("collector", collector)
    conn.connect(b.username, b.password, wait=True)
    receipt = f"sub-{uuid.uuid4().hex}"
    # subscribe() is asynchronous: only a receipt proves the broker will deliver to us.
    conn.subscribe(b.rucio_topic, id="test-events", ack="auto", headers={"receipt": receipt})
    assert collector.receipts.get(timeout=10) == receipt
    try:
        name = f"event-{uuid.uuid4().hex[:10]}.dat"
        (tmp_path / name).write_bytes(os.urandom(2000))
        rucio(rucio_env, "upload", "--rse", "SITE_A_DISK", "--scope", "test", str(tmp_path / name))
        rucio(rucio_env, "rule", "add", "--copies", "1", "--rses", "SITE_B_DISK", "--notify", "Y", f"test:{name}")
        seen: list[str] = []
        while True:
            # hermes runs every [lake] daemon_sleep seconds; the timeout only bounds a hang.
            headers, body = collector.messages.get(timeout=60)
            payload = body.get("payload")
            assert isinstance(payload, dict)
            if payload.get("name") != name:
                continue
            seen.append(str(body["event_type"]))
            if body["event_type"] in ("transfer-queued", "rule_ok", "transfer-submitted", "transfer-done"):
                break
        assert headers["event_type"] == body["event_type"]
        assert payload["scope"] == "test"
    finally:
        conn.disconnect()


def test_boto3_object_reads_back_the_same(lake: Lake) -> None:
    s3 = lake.settings.s3
    client = S3Endpoint(lake.settings, lake.paths).client()
    key = f"probe/{uuid.uuid4().hex}"
    data = os.urandom(200_000)
    client.put_object(Bucket=s3.bucket, Key=key, Body=data)
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == data
    client.delete_object(Bucket=s3.bucket, Key=key)
