"""Rules on the real lake end in real bytes: the gfal2 transfertool under Rucio's own conveyor.

Everything here is the lake's: Rucio server and daemons, the conveyor started by ``inlet lake
up`` (``inlet daemon conveyor``), moto as S3, ActiveMQ fed by hermes. The Rucio client runs in
this process (RUCIO_CONFIG is set before its first import); bytes are checked at storage level,
with plain file reads and boto3, not through inlet's code.

The S3 outage test restarts the lake's S3 endpoint, which forgets its objects (moto keeps them in
memory): it runs last in this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest

from inlet.config import BrokerSettings
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.services.base import venv_bin
from tests.integration.conftest import Topic

RULE_WAIT_S = 150.0
Event = tuple[str, dict[str, Any]]


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(lake: Lake) -> Any:
    os.environ.update(lake.exports())
    from rucio.common.config import clean_cached_config

    clean_cached_config()
    from rucio.client import Client

    return Client()


class _Events(Topic):
    """Rucio's events (hermes), as (event_type, payload), and a wait for one of them."""

    def __init__(self, broker: BrokerSettings) -> None:
        super().__init__(broker, broker.rucio_topic)
        self.seen: list[Event] = []

    def take(self, timeout: float) -> Event:
        message = self.inbox.get(timeout=timeout)
        body = json.loads(message.body)
        return str(body.get("event_type", "")).lower(), body.get("payload", {})

    def wait_for(self, pred: Callable[[str, dict[str, Any]], bool], timeout: float = RULE_WAIT_S) -> Event:
        for ev in self.seen:
            if pred(*ev):
                return ev
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.take(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if pred(*ev):
                return ev
        raise AssertionError(f"no such hermes event within {timeout:.0f} s; seen: {[e[0] for e in self.seen][-40:]}")

    def drain(self) -> list[Event]:
        while True:
            try:
                self.seen.append(self.take(timeout=0))
            except queue.Empty:
                return self.seen


@pytest.fixture(scope="module")
def events(lake: Lake) -> Iterator[_Events]:
    with _Events(lake.settings.broker) as listener:
        yield listener


@pytest.fixture(scope="module")
def s3(lake: Lake) -> Any:
    c = lake.settings.s3
    return boto3.client(
        "s3",
        endpoint_url=c.endpoint,
        region_name=c.region,
        aws_access_key_id=c.access_key,
        aws_secret_access_key=c.secret_key,
    )


# -- helpers ------------------------------------------------------------------------------
def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def make_file(directory: Path, size: int, prefix: str = "plug") -> Path:
    path = directory / f"{prefix}-{uuid.uuid4().hex[:12]}.dat"
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            fh.write(chunk)
            left -= len(chunk)
    return path


def upload(files: list[Path], rse: str) -> None:
    from rucio.client.uploadclient import UploadClient

    # The Python UploadClient raises on failure (the CLI would exit 0).
    UploadClient().upload([{"path": str(p), "rse": rse, "did_scope": "test"} for p in files])


def wait_rule(client: Any, rule_id: str, want: str = "OK", timeout: float = RULE_WAIT_S) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        last = client.get_replication_rule(rule_id)
        return bool(last["state"] == want)

    wait_until(done, timeout, interval=0.5)
    assert last.get("state") == want, f"rule {rule_id} is {last.get('state')} ({last.get('error')}), not {want}"
    return last


def replica(client: Any, name: str, rse: str) -> dict[str, Any] | None:
    for rep in client.list_replicas([{"scope": "test", "name": name}], rse_expression=rse, all_states=True):
        states = rep.get("states", {})
        if rse in states:
            pfns = list(rep.get("rses", {}).get(rse, []))
            return {"state": states[rse], "pfn": pfns[0] if pfns else None}
    return None


def stored_bytes(pfn: str, s3: Any) -> bytes:
    url = urlparse(pfn)
    if url.scheme == "file":
        return Path(url.path).read_bytes()
    bucket, _, key = url.path.lstrip("/").partition("/")
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def suspicious_names(client: Any, rse: str) -> set[str]:
    # The REST answer is one JSON list, which the client yields as a single item.
    out: set[str] = set()
    for item in client.list_suspicious_replicas(rse_expression=rse):
        for rep in item if isinstance(item, list) else [item]:
            out.add(str(rep.get("name")))
    return out


def transfer_event_for(kind: str, name: str, dst: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda et, p: et == kind and p.get("name") == name and p.get("dst-rse") == dst


# -- tests --------------------------------------------------------------------------------
def test_dataset_rules_to_s3_tape_and_site_b_end_ok_with_bytes_verified(
    client: Any, events: _Events, s3: Any, tmp_path: Path
) -> None:
    files = [make_file(tmp_path, 100_000) for _ in range(3)] + [make_file(tmp_path, 70_000_000, "big")]
    upload(files, "SITE_A_DISK")
    dataset = f"plugins-ds-{uuid.uuid4().hex[:10]}"
    client.add_dataset("test", dataset)
    client.attach_dids("test", dataset, [{"scope": "test", "name": f.name} for f in files])
    client.close("test", dataset)
    rules = {
        rse: client.add_replication_rule([{"scope": "test", "name": dataset}], 1, rse, notify="Y")[0]
        for rse in ("S3", "TAPE", "SITE_B_DISK")
    }
    for rse, rule_id in rules.items():
        wait_rule(client, rule_id)
        for f in files:
            want = f.read_bytes()
            rep = replica(client, f.name, rse)
            assert rep is not None and rep["state"] == "AVAILABLE", (rse, f.name, rep)
            got = stored_bytes(rep["pfn"], s3)
            assert (len(got), adler32(got), md5(got)) == (len(want), adler32(want), md5(want)), (rse, f.name)
            events.wait_for(transfer_event_for("transfer-done", f.name, rse))
        events.wait_for(lambda et, p, r=rule_id: et == "rule_ok" and p.get("rule_id") == r)
        events.wait_for(
            lambda et, p, r=rule_id, d=rse: et == "datasetlock_ok" and p.get("rule_id") == r and p.get("rse") == d
        )


def test_rucio_cli_uploads_to_s3_and_downloads_back_bytes_verified(
    lake: Lake, rucio_env: dict[str, str], s3: Any, tmp_path: Path
) -> None:
    import subprocess

    small, big = make_file(tmp_path, 300_000, "cli"), make_file(tmp_path, 70_000_000, "cli-big")
    res = subprocess.run(
        [venv_bin("rucio"), "upload", "--rse", "S3", "--scope", "test", str(small), str(big)],
        env=rucio_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    down = tmp_path / "down"
    res = subprocess.run(
        [venv_bin("rucio"), "download", "--rses", "S3", "--dir", str(down), f"test:{small.name}", f"test:{big.name}"],
        env=rucio_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    for f in (small, big):
        assert (down / "test" / f.name).read_bytes() == f.read_bytes(), f.name
    # The object itself: one key per file, Rucio's adler32 stored with it (what stat() hands Rucio).
    bucket = lake.settings.s3.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if o["Key"].endswith(big.name)]
    assert len(keys) == 1
    head = s3.head_object(Bucket=bucket, Key=keys[0])
    assert head["Metadata"]["adler32"] == adler32(big.read_bytes())
    assert head["Metadata"]["md5"] == head["ETag"].strip('"') == md5(big.read_bytes())


def test_corrupted_source_fails_with_checksum_mismatch_and_nothing_marked_safe(
    client: Any, events: _Events, tmp_path: Path
) -> None:
    f = make_file(tmp_path, 200_000, "corrupt")
    upload([f], "SITE_A_DISK")
    rep = replica(client, f.name, "SITE_A_DISK")
    assert rep is not None
    on_disk = Path(urlparse(rep["pfn"]).path)
    data = bytearray(on_disk.read_bytes())
    data[1000] ^= 0xFF  # same size, one flipped byte: only a checksum can tell
    on_disk.write_bytes(bytes(data))
    rule_ids = {
        rse: client.add_replication_rule([{"scope": "test", "name": f.name}], 1, rse)[0]
        for rse in ("SITE_B_DISK", "S3")
    }
    try:
        for rse in rule_ids:
            _, payload = events.wait_for(transfer_event_for("transfer-failed", f.name, rse))
            assert "CHECKSUM MISMATCH" in str(payload.get("reason")), payload
        for rse, rule_id in rule_ids.items():
            dst = replica(client, f.name, rse)
            assert dst is None or dst["state"] != "AVAILABLE", (rse, dst)
            assert client.get_replication_rule(rule_id)["state"] != "OK"
        assert not any(et == "transfer-done" and p.get("name") == f.name for et, p in events.drain())
        # Rucio's finisher declared the corrupt source SUSPICIOUS (the lake's [conveyor] suspicious_pattern).
        assert wait_until(lambda: f.name in suspicious_names(client, "SITE_A_DISK"), 60, interval=1.0), (
            "the corrupt source was not declared suspicious"
        )
    finally:
        for rule_id in rule_ids.values():
            client.delete_replication_rule(rule_id, purge_replicas=True)


def test_recall_from_tape_through_a_rule_with_lifetime(client: Any, events: _Events, s3: Any, tmp_path: Path) -> None:
    f = make_file(tmp_path, 500_000, "recall")
    upload([f], "TAPE")
    assert replica(client, f.name, "SITE_A_DISK") is None
    rule_id = client.add_replication_rule([{"scope": "test", "name": f.name}], 1, "SITE_A_DISK", lifetime=3600)[0]
    rule = wait_rule(client, rule_id)
    assert rule["expires_at"] is not None
    rep = replica(client, f.name, "SITE_A_DISK")
    assert rep is not None and rep["state"] == "AVAILABLE"
    assert stored_bytes(rep["pfn"], s3) == f.read_bytes()
    # The copy came from the tape (the only source), through the transfertool's recall.
    _, payload = events.wait_for(transfer_event_for("transfer-done", f.name, "SITE_A_DISK"))
    assert payload.get("src-rse") == "TAPE"


def test_s3_outage_fails_the_transfer_then_rucio_retry_succeeds_without_duplicates(
    lake: Lake, client: Any, events: _Events, s3: Any, tmp_path: Path
) -> None:
    f = make_file(tmp_path, 400_000, "outage")
    upload([f], "SITE_A_DISK")
    endpoint = lake.groups()["s3"][0]
    assert endpoint.proc.is_running(), "the lake's S3 endpoint must be managed by the lake for this test"
    endpoint.proc.stop()
    try:
        rule_id = client.add_replication_rule([{"scope": "test", "name": f.name}], 1, "S3")[0]
        _, payload = events.wait_for(transfer_event_for("transfer-failed", f.name, "S3"), timeout=60)
        assert payload.get("reason")
    finally:
        endpoint.start()
        assert wait_until(endpoint.ready, 30)
        endpoint.after_start()  # moto starts empty: recreate the bucket
    wait_rule(client, rule_id)
    rep = replica(client, f.name, "S3")
    assert rep is not None and rep["state"] == "AVAILABLE"
    assert stored_bytes(rep["pfn"], s3) == f.read_bytes()
    s3_replicas = [r for r in client.list_replicas([{"scope": "test", "name": f.name}]) if "S3" in r.get("rses", {})]
    assert len(s3_replicas) == 1 and len(s3_replicas[0]["rses"]["S3"]) == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=lake.settings.s3.bucket).get("Contents", [])]
    assert sum(k.endswith(f.name) for k in keys) == 1
