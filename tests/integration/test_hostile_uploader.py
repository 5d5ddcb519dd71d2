"""The uploader's input, tried as a hostile user would, on the real lake (issue 13, item 6).

A real Celery worker on the lake's Redis, the real Rucio server, ActiveMQ and the run
catalogue; the worker and the env come from test_uploader_flow (DAQ roots: pytest's temporary
directory). Outcomes are checked on disk, in Rucio (through a plain Rucio client) and on the
inlet topic, never through the uploader's own code.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from inlet.lake.lake import Lake
from tests.integration import test_uploader_flow as flow
from tests.integration.conftest import Topic, daq_files, inlet, python_child, start_watcher, stop_watcher, wait_for
from tests.integration.test_uploader_flow import SCOPE, _adler, ask

# test_uploader_flow's fixtures, reused rather than copied: its env (a queue, state and
# quarantine of this module's own; DAQ roots: pytest's temporary directory), a real worker on
# the lake's Redis, and a subscriber of the inlet topic.
env = flow.env
worker = flow.worker
events = flow.events


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside the DAQ roots (pytest's temporary directory is the root)."""
    d = Path(tempfile.mkdtemp(prefix="hostile-outside-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def qdir(env: dict[str, str]) -> Path:
    return Path(env["INLET_UPLOADER__QUARANTINE_DIR"])


def reason(env: dict[str, str], name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((qdir(env) / f"{name}.reason.json").read_text())
    return doc


# Sends tasks with nothing but Celery and the broker URL: what anyone holding the Redis password
# could do, bypassing inlet's client-side checks.
FORGE = r"""
import json, sys
from celery import Celery
url, queue, tasks = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
app = Celery(broker=url, backend=url)
results = [app.send_task(name, args=args, queue=queue) for name, args in tasks]
out = []
for r in results:
    try:
        out.append({"ok": r.get(timeout=120)})
    except Exception as exc:
        out.append({"error": f"{type(exc).__name__}: {exc}"})
print(json.dumps(out))
"""


def forge(env: dict[str, str], *tasks: tuple[str, list[Any]]) -> list[dict[str, Any]]:
    printed = python_child(env, FORGE, env["INLET_REDIS__URL"], env["INLET_UPLOADER__QUEUE"], stdin=json.dumps(tasks))
    out: list[dict[str, Any]] = json.loads(printed)
    return out


def quarantine_events(events: Topic, name: str) -> list[dict[str, Any]]:
    return [d for d in events.docs if d["event_type"] == "file-quarantined" and d["payload"]["name"] == name]


def test_a_symlink_to_a_private_file_outside_the_roots_is_refused_not_uploaded(
    env: dict[str, str], worker: subprocess.Popen[bytes], events: Topic, tmp_path: Path, outside: Path
) -> None:
    run = random.randint(100_000, 999_999)
    secret = outside / "secret.key"
    secret.write_bytes(b"PRIVATE " + os.urandom(64))
    secret.chmod(0o600)
    before = secret.read_bytes()
    daq = tmp_path / "daq"
    daq.mkdir()
    link = daq / f"run{run:06d}_pmt_0001.mid.gz"
    link.symlink_to(secret)

    # The command line refuses it before anything is queued...
    res = inlet(env, "upload", str(link), "--run", str(run))
    assert res.returncode == 2, res.stderr
    assert "outside the DAQ roots" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr

    # ...and so does the worker, when a task names it directly.
    (out,) = forge(env, ("inlet.upload_batch", [[{"path": str(link)}], run, "raw"]))
    assert out["ok"]["registered"] == [] and str(link) in out["ok"]["quarantined"]
    assert "outside the DAQ roots" in out["ok"]["quarantined"][str(link)]
    assert link.is_symlink() and secret.read_bytes() == before  # neither moved nor changed
    doc = reason(env, link.name)
    assert doc["moved_to"] is None and doc["kind"] == "outside-roots" and doc["left_in_place"]
    assert not (qdir(env) / link.name).exists()
    (ev,) = wait_for("the alarm event", lambda: quarantine_events(events, link.name), 60)
    assert ev["payload"]["kind"] == "outside-roots"
    assert ask(env, ["exists", SCOPE, link.name]) == [False]


def test_a_task_naming_dir_sub_dotdot_does_not_move_the_directory(
    env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    parent = tmp_path / f"parent{run}"
    (parent / "sub").mkdir(parents=True)
    (keep,) = daq_files(parent, run, 1, size=100)
    (out,) = forge(env, ("inlet.upload_batch", [[{"path": f"{parent}/sub/.."}], run, "raw"]))
    assert out["ok"]["registered"] == []
    assert "is a directory" in out["ok"]["quarantined"][f"{parent}/sub/.."]
    assert (parent / "sub").is_dir() and keep.exists()
    assert not (qdir(env) / parent.name).exists()
    doc = reason(env, parent.name)
    assert doc["source"] == str(parent) and doc["moved_to"] is None and doc["kind"] == "not-regular"


def test_a_forged_task_outside_the_roots_is_refused_and_the_worker_keeps_going(
    env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path, outside: Path
) -> None:
    run = random.randint(100_000, 999_999)
    shadow = Path("/etc/shadow")
    digest = hashlib.sha256(shadow.read_bytes()).hexdigest()
    planted = outside / f"run{run:06d}_pmt_0001.mid.gz"  # a valid name, outside every root
    planted.write_bytes(b"not for the lake")
    before = set(qdir(env).glob("*")) if qdir(env).exists() else set()

    forged = forge(
        env,
        ("inlet.upload_batch", [[{"path": "/etc/shadow"}, {"path": str(planted)}], run, "raw"]),
        ("inlet.upload_batch", [[{"path": f"{tmp_path}/../../../../etc/shadow"}], run, "raw"]),
        ("inlet.upload_batch", ["not a list", run, "raw"]),
        ("inlet.upload_batch", [[{"path": 5}, 7, {"path": "/x\u0000y"}], run, "raw"]),
        ("inlet.upload_batch", [[], "abc", "raw"]),
        ("inlet.upload_batch", [[], 10**30, "raw"]),
        ("inlet.end_run", ["abc", "raw"]),
    )
    first, second, not_list, bad_items, bad_run, huge_run, bad_end = forged
    assert first["ok"]["registered"] == [] and set(first["ok"]["quarantined"]) == {"/etc/shadow", str(planted)}
    assert all("outside the DAQ roots" in why for why in first["ok"]["quarantined"].values())
    assert list(second["ok"]["quarantined"]) == [f"{tmp_path}/../../../../etc/shadow"]
    for refused in (not_list, bad_run, huge_run, bad_end):
        assert "BadInput" in refused["error"] and "task refused" in refused["error"]
    assert bad_items["ok"]["registered"] == [] and len(bad_items["ok"]["failed"]) == 3

    # Nothing was moved or read: /etc/shadow and the planted file are where they were, unchanged.
    assert hashlib.sha256(shadow.read_bytes()).hexdigest() == digest
    assert planted.read_bytes() == b"not for the lake"
    new = {p.name for p in set(qdir(env).glob("*")) - before}
    assert new <= {"shadow.reason.json", "shadow.1.reason.json", f"{planted.name}.reason.json"}
    assert reason(env, "shadow")["moved_to"] is None

    # A raw message that is not even a Celery task, pushed straight into the queue.
    r = redis.Redis.from_url(env["INLET_REDIS__URL"])
    r.lpush(env["INLET_UPLOADER__QUEUE"], b"\xff not json", json.dumps({"body": "x" * 100, "headers": 5}))

    # The worker is still there and still works.
    (good,) = daq_files(tmp_path / "daq", run, 1, size=1000)
    res = inlet(env, "upload", str(good), "--run", str(run))
    assert res.returncode == 0, res.stderr
    assert worker.poll() is None
    (replicas,) = ask(env, ["replicas", SCOPE, good.name])
    assert replicas[0]["adler32"] == _adler(good.read_bytes())


BAD_SIDECARS: dict[str, Any] = {
    "run-abc": '{"run": "abc"}',
    "size-abc": '{"size": "abc"}',
    "run-out-of-range": '{"run": 1000000}',
    "wrong-type": '{"adler32": 12345678, "md5": ["x"]}',
    "not-json": "{not json",
    "huge-number": '{"size": ' + "9" * 5001 + "}",
    "nested-garbage": '{"run": ' + "[" * 20_000 + "]" * 20_000 + "}",
    "symlink": None,  # the sidecar is a symlink to a good sidecar outside the roots
    "directory": None,  # the sidecar is a directory
}


def test_bad_sidecars_are_quarantined_with_reasons_while_the_good_files_are_registered(
    lake: Lake,
    env: dict[str, str],
    worker: subprocess.Popen[bytes],
    events: Topic,
    tmp_path: Path,
    outside: Path,
) -> None:
    run = random.randint(100_000, 999_999)
    daq = tmp_path / "daq"
    files = daq_files(daq, run, len(BAD_SIDECARS) + 2, size=1200)
    good = [files[0], files[-1]]
    for f in good:
        side = {"run": run, "size": 1200, "adler32": _adler(f.read_bytes())}
        f.with_name(f.name + ".json").write_text(json.dumps(side))
    bad: dict[str, Path] = {}
    for (kind, text), f in zip(BAD_SIDECARS.items(), files[1:-1], strict=True):
        side = f.with_name(f.name + ".json")
        if kind == "symlink":
            target = outside / "good.json"
            target.write_text(json.dumps({"run": run}))
            side.symlink_to(target)
        elif kind == "directory":
            side.mkdir()
        else:
            side.write_text(text)
        bad[kind] = f
    contents = {f.name: f.read_bytes() for f in files}

    log = tmp_path / "watch.log"
    watcher = start_watcher(env, daq, log, stable=0, interval=0.3)
    try:
        ds = f"run{run:06d}.raw"
        want = [sorted(f.name for f in good)]
        wait_for(
            "the good files in the run dataset",
            lambda: ask(env, ["exists", SCOPE, ds]) == [True] and ask(env, ["content", SCOPE, ds]) == want,
            180,
        )
        wait_for(
            "a reason file for every bad sidecar",
            lambda: all((qdir(env) / f"{f.name}.reason.json").exists() for f in bad.values()),
            60,
        )
        assert watcher.poll() is None, log.read_text()[-3000:]
    finally:
        stop_watcher(watcher)
    assert "Traceback" not in log.read_text()

    for kind, f in bad.items():
        doc = reason(env, f.name)
        assert doc["kind"] == "bad-sidecar" and "bad sidecar" in doc["reason"], kind
        assert doc["moved_to"] == str(qdir(env) / f.name), kind
        assert (qdir(env) / f.name).read_bytes() == contents[f.name] and not f.exists(), kind
    assert "'run' is \"abc\"" in reason(env, bad["run-abc"].name)["reason"]
    assert "'size' is \"abc\"" in reason(env, bad["size-abc"].name)["reason"]
    assert "outside 0-999999" in reason(env, bad["run-out-of-range"].name)["reason"]
    assert "symlink" in reason(env, bad["symlink"].name)["reason"]
    assert (outside / "good.json").exists()  # the symlink's target is never touched
    # Every bad file raised its alarm; none of them reached Rucio.
    for f in bad.values():
        wait_for(f"the alarm for {f.name}", lambda f=f: quarantine_events(events, f.name), 60)
    assert ask(env, *[["exists", SCOPE, f.name] for f in bad.values()]) == [False] * len(bad)
    (replicas,) = ask(env, ["replicas", SCOPE, good[0].name])
    assert replicas[0]["adler32"] == _adler(contents[good[0].name])


def test_a_bad_sidecar_in_a_task_quarantines_its_file_and_the_batch_goes_in(
    env: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    run = random.randint(100_000, 999_999)
    ok, bad_size, bad_run = daq_files(tmp_path / "daq", run, 3, size=900)
    (out,) = forge(
        env,
        (
            "inlet.upload_batch",
            [
                [
                    {"path": str(ok), "sidecar": {"size": 900}},
                    {"path": str(bad_size), "sidecar": {"size": "abc"}},
                    {"path": str(bad_run), "sidecar": {"run": run + 1}},
                ],
                run,
                "raw",
            ],
        ),
    )
    assert out["ok"]["registered"] == [f"{SCOPE}:{ok.name}"]
    assert set(out["ok"]["quarantined"]) == {str(bad_size), str(bad_run)}
    assert (qdir(env) / bad_size.name).exists() and reason(env, bad_size.name)["kind"] == "bad-sidecar"
    assert ask(env, ["exists", SCOPE, ok.name], ["exists", SCOPE, bad_size.name]) == [True, False]


def test_redis_refuses_a_client_without_the_password(lake: Lake) -> None:
    url = lake.settings.redis.url
    (svc,) = lake.groups()["redis"]
    anonymous = redis.Redis(host="127.0.0.1", port=svc.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    wrong = redis.Redis(host="127.0.0.1", port=svc.port, password="wrong-password")
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    assert redis.Redis.from_url(url).ping()
    # The password is in a file only its owner reads, not on the command line every user sees.
    password = redis.connection.parse_url(url)["password"]
    proc = svc.proc.process()
    assert proc is not None
    assert not any(password in a for a in proc.cmdline())
    conf = lake.paths.conf / "redis.conf"
    assert conf.stat().st_mode & 0o777 == 0o600 and password in conf.read_text()
