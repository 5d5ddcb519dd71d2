"""The lake is real: the standard clients of each service work against it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from rucio_inlet.checksums import file_adler32

from inlet.lake.lake import Lake
from inlet.lake.services.base import venv_bin
from inlet.lake.services.s3 import S3Endpoint
from tests.integration.conftest import Topic

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


def test_rule_with_notify_produces_a_hermes_event_on_activemq(
    lake: Lake, rucio_env: dict[str, str], tmp_path: Path
) -> None:
    b = lake.settings.broker
    # Subscribed once the broker confirmed it (subscribe() alone is asynchronous).
    collector = Topic(b, b.rucio_topic).open()
    try:
        name = f"event-{uuid.uuid4().hex[:10]}.dat"
        (tmp_path / name).write_bytes(os.urandom(2000))
        rucio(rucio_env, "upload", "--rse", "SITE_A_DISK", "--scope", "test", str(tmp_path / name))
        rucio(rucio_env, "rule", "add", "--copies", "1", "--rses", "SITE_B_DISK", "--notify", "Y", f"test:{name}")
        seen: list[str] = []
        while True:
            # hermes runs every [lake] daemon_sleep seconds; the timeout only bounds a hang.
            message = collector.inbox.get(timeout=60)
            headers, body = message.headers, json.loads(message.body)
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
        collector.close()


def test_boto3_object_reads_back_the_same(lake: Lake) -> None:
    s3 = lake.settings.s3
    client = S3Endpoint(lake.settings, lake.paths).client()
    key = f"probe/{uuid.uuid4().hex}"
    data = os.urandom(200_000)
    client.put_object(Bucket=s3.bucket, Key=key, Body=data)
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == data
    client.delete_object(Bucket=s3.bucket, Key=key)
