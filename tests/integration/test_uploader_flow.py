"""The uploader against the real lake: a real Celery worker on the lake's Redis, the real Rucio
server and conveyor, ActiveMQ, the run catalogue. Results are checked with the plain `rucio` CLI,
a STOMP subscriber and the catalogue, never through the uploader's own code."""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rucio_inlet.catalog_models import OutboxMessage, Run, RunFile

from inlet.catalog import open_catalog
from inlet.event_contract import DAQ_RELEASE, envelope, file_event_id, publish_headers
from inlet.lake.lake import Lake
from inlet.messaging import Connection
from tests.integration.conftest import (
    BIN,
    Topic,
    UploaderEnv,
    daq_files,
    inlet,
    python_child,
    queue_batch,
    start_watcher,
    stop_watcher,
    wait_for,
)

SCOPE = "cygno.raw"
HELD = {"tier": "raw", "rules": [{"rse_expression": "SITE_B_DISK", "delay_injection": 86400}]}
#: As the rehearsal's: site A for the run dataset, and a rule per file to site B.
PER_FILE = {
    "tier": "raw",
    "rules": [
        {"rse_expression": "SITE_A_DISK", "notify": "N"},
        {"rse_expression": "SITE_B_DISK", "notify": "N", "per_file": True},
    ],
    "release": False,
}
PLAIN = {"tier": "raw", "rules": [{"rse_expression": "SITE_A_DISK", "notify": "N"}], "release": False}


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


@pytest.fixture(scope="module")
def env(uploader_env: UploaderEnv) -> dict[str, str]:
    return uploader_env(
        "flow", streams=json.dumps({"raw": {"tier": "raw"}, "held": HELD, "perfile": PER_FILE, "plain": PLAIN})
    )


@pytest.fixture(scope="module")
def worker(env: dict[str, str], celery_worker: Callable[..., subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    return celery_worker(env, f"flow-{uuid.uuid4().hex[:6]}", concurrency=2)


def rucio(env: dict[str, str], *args: str) -> str:
    res = subprocess.run([str(BIN / "rucio"), *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, f"rucio {' '.join(args)}: {res.stderr or res.stdout}"
    return res.stdout


# One child process per question set: Rucio's client reads RUCIO_CONFIG once, at import, and a
# process start costs seconds on a loaded machine.
CLIENT = r"""
import json, sys, time
from rucio.client import Client
from rucio.common.exception import DataIdentifierNotFound
c = Client()
out = []
for op, *args in json.loads(sys.stdin.read()):
    if op == "content":
        out.append(sorted(d["name"] for d in c.list_content(*args)))
    elif op == "meta":
        out.append(c.get_metadata(*args, plugin="ALL"))
    elif op == "rules":
        out.append({r["rse_expression"]: r["state"] for r in c.list_did_rules(*args)})
    elif op == "grouping":
        out.append({r["rse_expression"]: [r["grouping"], r["locks_ok_cnt"]] for r in c.list_did_rules(*args)})
    elif op == "replicas":
        out.append([{"rses": sorted(r["rses"]), "adler32": r["adler32"]}
                    for r in c.list_replicas([{"scope": args[0], "name": args[1]}])])
    elif op == "rule_ids":
        out.append([[r["rse_expression"], r["id"]] for r in c.list_did_rules(*args)])
    elif op == "exists":
        try:
            c.get_did(*args)
            out.append(True)
        except DataIdentifierNotFound:
            out.append(False)
    elif op == "wait_rules_ok":
        deadline = time.time() + args[2]
        while True:
            states = [r["state"] for r in c.list_did_rules(args[0], args[1])]
            if states and all(s == "OK" for s in states) or time.time() > deadline:
                out.append(states)
                break
            time.sleep(1)
print(json.dumps(out, default=str))
"""


def ask(env: dict[str, str], *ops: list[Any]) -> list[Any]:
    result: list[Any] = json.loads(python_child(env, CLIENT, stdin=json.dumps(ops)))
    return result


@pytest.fixture(scope="module")
def events(lake: Lake) -> Iterator[Topic]:
    with Topic(lake.settings.broker, lake.settings.broker.inlet_topic) as topic:
        yield topic


@pytest.fixture(scope="module")
def run_number() -> int:
    return random.randint(100_000, 999_999)


@pytest.fixture(scope="module")
def uploaded(
    env: dict[str, str],
    worker: subprocess.Popen[bytes],
    events: Topic,
    run_number: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Path]:
    files = daq_files(tmp_path_factory.mktemp("daq"), run_number, 4)
    res = inlet(env, "upload", *map(str, files), "--run", str(run_number), "--stream", "raw", "--end-run")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary == {"registered": 4, "skipped": 0, "failed": 0, "quarantined": 0, "run_state": "UPLOADED"}
    return files


def test_run_upload_registers_dids_dataset_rules_catalogue_and_events(
    lake: Lake, env: dict[str, str], events: Topic, uploaded: list[Path], run_number: int
) -> None:
    ds = f"run{run_number:06d}.raw"
    first = run_number // 1000 * 1000
    container = f"runs{first:06d}-{first + 999:06d}.raw"
    content, meta, rules, replicas, in_container = ask(
        env,
        ["content", SCOPE, ds],
        ["meta", SCOPE, ds],
        ["rules", SCOPE, ds],
        ["replicas", SCOPE, uploaded[0].name],
        ["content", SCOPE, container],
    )
    assert content == sorted(f.name for f in uploaded)
    assert (meta["run_nr"], meta["run_number"], meta["run_state"], meta["is_open"]) == (
        run_number,
        run_number,
        "UPLOADED",
        False,
    )
    assert meta["stream"] == "raw"
    assert set(rules) == {"S3", "TAPE", "SITE_A_DISK"}
    assert "SITE_A_DISK" in replicas[0]["rses"]
    assert replicas[0]["adler32"] == _adler(uploaded[0].read_bytes())
    # The container groups a thousand runs: other tests' runs of the same thousand may be in it too.
    assert ds in in_container
    assert all(first <= int(name[3:9]) <= first + 999 and name.endswith(".raw") for name in in_container)
    # And as a physicist sees it, with the plain CLI.
    listed = rucio(env, "rule", "list", "--did", f"{SCOPE}:{ds}")
    for rse in ("S3", "TAPE", "SITE_A_DISK"):
        assert f" {rse} " in listed

    cat = open_catalog(lake.settings.catalog_url())
    with cat.session() as s:
        run = s.query(Run).filter_by(experiment="cygno", run_number=run_number).one()
        assert (run.n_files, run.state.value, run.dataset) == (4, "UPLOADED", f"run{run_number:06d}.raw")
        rows = {f.name: f for f in s.query(RunFile).filter_by(run_id=run.id)}
        for f in uploaded:
            assert rows[f.name].adler32 == _adler(f.read_bytes())
            assert rows[f.name].registered_at is not None
    cat.dispose()

    names = {f.name for f in uploaded}
    got = wait_for(
        "4 file-registered events",
        lambda: [d for d in events.docs if d["event_type"] == "file-registered" and d["payload"]["name"] in names],
        30,
    )
    assert len(got) == 4
    by_name = {d["payload"]["name"]: d for d in got}
    for f in uploaded:
        p = by_name[f.name]["payload"]
        assert (p["scope"], p["run"], p["bytes"], p["rse"]) == (SCOPE, run_number, 85_000, "SITE_A_DISK")
        assert p["adler32"] == _adler(f.read_bytes())
        assert by_name[f.name]["id"] == f"file-registered:{SCOPE}:{f.name}"


def test_run_dataset_rules_drop_dataset_grouping_only_where_nothing_depends_on_it(
    env: dict[str, str], uploaded: list[Path], run_number: int
) -> None:
    """Site A's rule (one RSE, notify N) is NONE: Rucio's evaluator then no longer reads the whole
    dataset on each attach. S3 and TAPE (notify C: rule_ok/datasetlock_ok start reconstruction
    and release the DAQ copy) keep DATASET."""
    dataset = f"run{run_number:06d}.raw"
    [rules] = ask(env, ["grouping", SCOPE, dataset])
    assert {rse: g for rse, (g, _) in rules.items()} == {"SITE_A_DISK": "NONE", "S3": "DATASET", "TAPE": "DATASET"}
    # Every file is locked at site A by the rule, as with DATASET grouping (once the evaluator passed).
    wait_for(
        "site A's rule to lock every file",
        lambda: ask(env, ["grouping", SCOPE, dataset])[0]["SITE_A_DISK"][1] == len(uploaded),
        timeout=300,
        every=2,
    )


def test_duplicate_upload_is_a_noop(lake: Lake, env: dict[str, str], uploaded: list[Path], run_number: int) -> None:
    cat = open_catalog(lake.settings.catalog_url())
    with cat.session() as s:
        outbox_before = s.query(OutboxMessage).count()
    res = inlet(env, "upload", *map(str, uploaded), "--run", str(run_number))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["skipped"] == 4
    with cat.session() as s:
        assert s.query(OutboxMessage).count() == outbox_before
        run = s.query(Run).filter_by(experiment="cygno", run_number=run_number).one()
        assert run.n_files == 4
    cat.dispose()
    (content,) = ask(env, ["content", SCOPE, f"run{run_number:06d}.raw"])
    assert len(content) == 4


def test_same_name_other_content_is_refused(
    env: dict[str, str], uploaded: list[Path], run_number: int, tmp_path: Path
) -> None:
    other = tmp_path / uploaded[0].name
    other.write_bytes(os.urandom(1000))
    res = inlet(env, "upload", str(other), "--run", str(run_number))
    assert res.returncode == 1
    assert "a DID never changes content" in " ".join(res.stderr.split())
    assert other.exists()
    (replicas,) = ask(env, ["replicas", SCOPE, uploaded[0].name])
    assert replicas[0]["adler32"] == _adler(uploaded[0].read_bytes())


def test_bad_name_is_refused_with_the_schema_message_and_the_file_kept(
    env: dict[str, str], worker: subprocess.Popen[bytes], run_number: int, tmp_path: Path
) -> None:
    bad = tmp_path / f"run{run_number:06d}-oops.dat"
    bad.write_bytes(b"x" * 100)
    res = inlet(env, "upload", str(bad), "--run", str(run_number))
    assert res.returncode == 2
    assert "names in scope cygno.raw must match one of" in " ".join(res.stderr.split())
    assert "nothing was uploaded" in res.stderr
    assert bad.read_bytes() == b"x" * 100


def test_bad_name_reaching_a_worker_goes_to_quarantine_with_a_reason(
    env: dict[str, str], worker: subprocess.Popen[bytes], run_number: int, tmp_path: Path
) -> None:
    bad = tmp_path / f"run{run_number:06d}-oops.dat"
    bad.write_bytes(b"y" * 10)
    out = queue_batch(env, [{"path": str(bad)}], run_number)
    assert str(bad) in out["quarantined"]
    assert "breaks the naming schema" in out["quarantined"][str(bad)]
    qdir = Path(env["INLET_UPLOADER__QUARANTINE_DIR"])
    assert (qdir / bad.name).read_bytes() == b"y" * 10
    reason = json.loads((qdir / f"{bad.name}.reason.json").read_text())
    assert reason["kind"] == "bad-name" and reason["source"] == str(bad)


def test_sidecar_checksum_mismatch_registers_nothing(
    env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    (f,) = daq_files(tmp_path, run, 1, size=1000)
    out = queue_batch(env, [{"path": str(f), "sidecar": {"adler32": "00000001"}}], run)
    assert out["registered"] == []
    assert "adler32 mismatch" in out["failed"][str(f)]
    assert f.exists()
    assert ask(env, ["exists", SCOPE, f.name]) == [False]


def test_daq_copy_is_freed_only_once_every_rule_is_ok(
    env: dict[str, str], worker: subprocess.Popen[bytes], lake: Lake, tmp_path: Path
) -> None:
    # The releaser, listening for the listener's daq-release events; its next poll is an hour away.
    log_path = tmp_path / "release.log"
    rel_log = log_path.open("wb")
    releaser = subprocess.Popen(
        [str(BIN / "inlet"), "-v", "uploader", "release", "--interval", "3600"],
        env=env,
        stdout=rel_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for("the releaser's first poll", lambda: b"release poll:" in log_path.read_bytes(), 60)
        # A stream whose rule cannot be satisfied yet (waiting for injection), and a normal run.
        held_run, run = random.randint(100_000, 999_999), random.randint(100_000, 999_999)
        (held,) = daq_files(tmp_path / "held", held_run, 1, size=2000)
        files = daq_files(tmp_path / "daq", run, 2, size=3000)
        assert inlet(env, "upload", str(held), "--run", str(held_run), "--stream", "held").returncode == 0
        assert inlet(env, "upload", *map(str, files), "--run", str(run)).returncode == 0
        assert ask(env, ["wait_rules_ok", SCOPE, f"run{run:06d}.raw", 150]) == [["OK", "OK", "OK"]]
        # Rules OK but no signal yet: the DAQ copies are still there.
        assert all(f.exists() for f in files)
        b = lake.settings.broker
        with Connection(b) as conn:
            for f in [held, files[0]]:
                payload = {"scope": SCOPE, "name": f.name, "rules": []}
                doc = envelope(DAQ_RELEASE, payload, file_event_id(DAQ_RELEASE, SCOPE, f.name))
                conn.send(b.inlet_topic, json.dumps(doc), publish_headers(doc))
        wait_for("the signalled DAQ copy to go", lambda: not files[0].exists(), 60)
        # Only the signalled file went; the held one (rule not OK) stays despite its signal.
        assert files[1].exists()
        assert held.exists()
    finally:
        releaser.terminate()
        releaser.wait(30)
        rel_log.close()
    # The polling fallback frees what is safe and nothing else.
    res = inlet(env, "uploader", "release", "--once")
    assert res.returncode == 0, res.stderr
    assert not files[1].exists()
    assert held.exists()
    assert ask(env, ["rules", SCOPE, f"run{held_run:06d}.raw"]) == [{"SITE_B_DISK": "INJECT"}]


def test_watch_uploads_closed_files_and_quarantines_bad_names(
    lake: Lake, env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    daq = tmp_path / "daq"
    (with_sidecar, still) = daq_files(daq, run, 2, size=1500)
    with_sidecar.with_name(with_sidecar.name + ".json").write_text(
        json.dumps({"run": run, "adler32": _adler(with_sidecar.read_bytes())})
    )
    bad = daq / "notes.txt"
    bad.write_bytes(b"not a run file")
    watcher = start_watcher(env, daq, tmp_path / "watch.log", stable=1, interval=0.5)
    try:
        cat = open_catalog(lake.settings.catalog_url())

        def registered() -> set[str]:
            with cat.session() as s:
                return {f.name for f in s.query(RunFile).filter(RunFile.name.like(f"run{run:06d}_%"))}

        assert wait_for("both closed files registered", lambda: registered() == {with_sidecar.name, still.name}, 120)
        cat.dispose()
    finally:
        stop_watcher(watcher)
    qdir = Path(env["INLET_UPLOADER__QUARANTINE_DIR"])
    assert (qdir / "notes.txt").read_bytes() == b"not a run file"
    assert "no run number" in json.loads((qdir / "notes.txt.reason.json").read_text())["reason"]


def _rule_calls(lake: Lake) -> int:
    """Rule-creating REST calls the lake's Rucio server has answered so far (its access log)."""
    log = lake.paths.logs / "rucio-access.log"
    return sum(1 for line in log.read_text(errors="replace").splitlines() if '"POST /rules/ ' in line)


def test_a_batchs_per_file_rules_are_a_rule_per_file_made_in_one_call(
    lake: Lake, env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path / "daq", run, 6)
    before = _rule_calls(lake)
    res = inlet(env, "upload", *map(str, files), "--run", str(run), "--stream", "perfile")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["registered"] == 6
    # One batch, one rule call: Rucio made a rule per file of it.
    assert _rule_calls(lake) - before == 1
    per_file = ask(env, *(["rule_ids", SCOPE, f.name] for f in files))
    assert [[rse for rse, _ in rules] for rules in per_file] == [["SITE_B_DISK"]] * 6
    assert len({rid for rules in per_file for _, rid in rules}) == 6, "a rule of its own per file"
    (ds_rules,) = ask(env, ["rules", SCOPE, f"run{run:06d}.raw"])
    assert set(ds_rules) == {"SITE_A_DISK"}


def test_a_retried_batch_whose_files_have_some_of_their_rules_gets_the_missing_ones_in_one_call(
    lake: Lake, env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    # A crash between registration and the rules, made on the real lake: the files registered by
    # a stream without the per-file rule (same tier, same run dataset), then some of them given
    # their rule by the per-file stream; then the whole batch again, as a retry would send it.
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path / "daq", run, 6)
    res = inlet(env, "upload", *map(str, files), "--run", str(run), "--stream", "plain")
    assert res.returncode == 0, res.stderr
    some = [files[i] for i in (1, 2, 4, 5)]
    res = inlet(env, "upload", *map(str, some), "--run", str(run), "--stream", "perfile")
    assert res.returncode == 0, res.stderr
    had = ask(env, *(["rule_ids", SCOPE, f.name] for f in files))
    assert [len(r) for r in had] == [0, 1, 1, 0, 1, 1]
    before = _rule_calls(lake)
    res = inlet(env, "upload", *map(str, files), "--run", str(run), "--stream", "perfile")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["skipped"] == 6
    assert _rule_calls(lake) - before == 2  # the whole batch, refused (DuplicateRule); the two missing
    again = ask(env, *(["rule_ids", SCOPE, f.name] for f in files))
    assert [[rse for rse, _ in rules] for rules in again] == [["SITE_B_DISK"]] * 6, "one rule per file, no second"
    assert [again[i] for i in (1, 2, 4, 5)] == [had[i] for i in (1, 2, 4, 5)]
