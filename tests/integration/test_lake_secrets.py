"""Secrets and health of the real lake: private files, PostgreSQL passwords, a reaper that deletes,
rule approval, and a status that tells a daemon failing its passes from a healthy one.

The plain accounts act through the plain Rucio client in a child process with a rucio.cfg of
their own: the lake's names root's token file, which a second account in this process would use.
"""

from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from inlet.config import Settings, secret_values
from inlet.lake.lake import Lake
from inlet.lake.ports import wait_until
from inlet.lake.process import ManagedProcess
from inlet.lake.services.base import LakePaths, venv_bin
from inlet.lake.services.daemons import DaemonGroup
from inlet.lake.services.mariadb import DB_PASSWORD as MARIADB_PASSWORD
from inlet.lake.services.rucio_server import rucio_env

DEADLINE_S = 240.0

#: Files the other helpers of issue 13 own (broker accounts, Redis password); they make them 0600.
OWNED_ELSEWHERE = {Path("data/activemq/conf/activemq.xml")}


@pytest.fixture(scope="module")
def client(lake: Lake) -> Any:
    os.environ.update(lake.exports())
    from rucio.common.config import clean_cached_config

    clean_cached_config()
    from rucio.client import Client

    return Client()


def _known_secrets(settings: Settings) -> set[str]:
    found = secret_values(settings) | {settings.lake.postgres_password, MARIADB_PASSWORD}
    return {s for s in found if len(s) >= 6}


# -- files holding secrets -----------------------------------------------------------------
def test_every_file_of_the_lake_holding_a_secret_is_owner_only(lake: Lake) -> None:
    secrets = [s.encode() for s in _known_secrets(lake.settings)]
    root = lake.paths.root
    holding, offenders = [], []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(s in data for s in secrets):
                holding.append(path)
                if st.st_mode & 0o077 and path.relative_to(root) not in OWNED_ELSEWHERE:
                    offenders.append(f"{path.relative_to(root)} is {oct(st.st_mode & 0o777)}")
    assert root / "conf" / "rucio.cfg" in holding  # the walk does see secrets
    assert offenders == []


def test_secret_files_are_rewritten_owner_only(lake: Lake, tmp_path: Path) -> None:
    # Written fresh (what `inlet lake up` does on every start), never wider than 0600 on the way.
    from inlet.lake.services.rucio_server import RucioServer

    paths = LakePaths(tmp_path / "lake")
    RucioServer(lake.settings, paths).write_configs()
    for name in ("rucio.cfg", "alembic.ini"):
        assert stat.S_IMODE((paths.conf / name).stat().st_mode) == 0o600, name
    assert not [p.name for p in paths.conf.iterdir() if p.name.startswith(".")], "no temporary file left"


# -- PostgreSQL ----------------------------------------------------------------------------
def _pg(lake: Lake, **kwargs: Any) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1",
        port=lake.settings.lake.postgres_port,
        user="rucio",
        dbname="rucio",
        connect_timeout=5,
        **kwargs,
    )


def test_postgres_refuses_a_connection_without_password(lake: Lake) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"no password supplied|password authentication failed"):
        _pg(lake, password="")


def test_postgres_refuses_a_wrong_password_and_over_its_socket(lake: Lake) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _pg(lake, password="not-the-password")
    sockdir = lake.paths.run / "pgsock"
    with pytest.raises(psycopg.OperationalError, match=r"no password supplied|password authentication failed"):
        psycopg.connect(
            host=str(sockdir), port=lake.settings.lake.postgres_port, user="rucio", dbname="rucio", password=""
        )


def test_postgres_accepts_the_configured_password(lake: Lake) -> None:
    with _pg(lake, password=lake.settings.lake.postgres_password) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


# -- the reaper ------------------------------------------------------------------------------
def _upload(client: Any, tmp_path: Path, rse: str) -> tuple[str, Path]:
    from rucio.client.uploadclient import UploadClient

    path = tmp_path / f"secrets-{uuid.uuid4().hex[:12]}.dat"
    path.write_bytes(os.urandom(50_000))
    UploadClient().upload([{"path": str(path), "rse": rse, "did_scope": "test"}])
    pfn = next(iter(client.list_replicas([{"scope": "test", "name": path.name}])))["rses"][rse][0]
    assert pfn.startswith("file://")
    stored = Path(pfn.removeprefix("file://").removeprefix("localhost"))
    assert stored.is_file()
    return path.name, stored


def test_the_replica_of_an_expired_rule_disappears_from_disk(client: Any, tmp_path: Path) -> None:
    # The upload's rule is given a lifetime of 1 s once the bytes are in: the judge-cleaner
    # removes the expired rule, the reaper deletes the replica and its bytes.
    name, stored = _upload(client, tmp_path, "SITE_B_DISK")
    for rule in client.list_did_rules("test", name):
        client.update_replication_rule(rule["id"], {"lifetime": 1})
    gone = wait_until(lambda: not stored.exists(), DEADLINE_S, interval=1.0)
    assert gone, f"{stored} still on disk; see the lake's rucio-judge-cleaner.log and rucio-reaper.log"
    assert wait_until(lambda: not _replica_states(client, name), DEADLINE_S, interval=1.0)


def _replica_states(client: Any, name: str) -> dict[str, str]:
    reps = list(client.list_replicas([{"scope": "test", "name": name}], all_states=True))
    return dict(reps[0].get("states", {})) if reps else {}


# -- rule approval ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_account(client: Any, lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A USER account with no attributes, and a rucio.cfg of its own for a child process."""
    account = f"appr{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    client.add_account(account, "USER", f"{account}@localhost")
    client.add_identity(account, identity=account, authtype="USERPASS", email=f"{account}@localhost", password=password)
    folder = tmp_path_factory.mktemp(account)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(lake.paths.rucio_cfg)
    cfg["client"].update(
        {"account": account, "username": account, "password": password, "auth_token_file_path": str(folder / "token")}
    )
    path = folder / "rucio.cfg"
    with path.open("w") as fh:
        cfg.write(fh)
    return {"account": account, "config": str(path)}


def _as_account(acct: dict[str, str], code: str) -> Any:
    env = {**os.environ, "RUCIO_CONFIG": acct["config"]}
    res = subprocess.run(
        [sys.executable, "-c", "import json, sys\nfrom rucio.client import Client\nc = Client()\n" + code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_a_rule_asking_approval_becomes_active_once_root_approves(
    client: Any, plain_account: dict[str, str], tmp_path: Path
) -> None:
    name, _ = _upload(client, tmp_path, "SITE_A_DISK")
    rule_id = _as_account(
        plain_account,
        f"print(json.dumps(c.add_replication_rule([{{'scope': 'test', 'name': {name!r}}}], 1, 'SITE_B_DISK', "
        "ask_approval=True)[0]))",
    )
    rule = client.get_replication_rule(rule_id)
    assert (rule["state"], rule["account"]) == ("WAITING_APPROVAL", plain_account["account"])
    assert client.approve_replication_rule(rule_id)
    last: dict[str, Any] = {}

    def ok() -> bool:
        nonlocal last
        last = client.get_replication_rule(rule_id)
        return bool(last["state"] == "OK")

    assert wait_until(ok, DEADLINE_S, interval=1.0), f"approved rule is {last.get('state')} ({last.get('error')})"


def test_a_plain_account_cannot_approve_its_own_rule(
    client: Any, plain_account: dict[str, str], tmp_path: Path
) -> None:
    name, _ = _upload(client, tmp_path, "SITE_A_DISK")
    out = _as_account(
        plain_account,
        f"rid = c.add_replication_rule([{{'scope': 'test', 'name': {name!r}}}], 1, 'SITE_B_DISK', "
        "ask_approval=True)[0]\n"
        "from rucio.common.exception import AccessDenied\n"
        "try:\n    c.approve_replication_rule(rid)\n    print(json.dumps('approved'))\n"
        "except AccessDenied:\n    print(json.dumps('denied'))",
    )
    assert out == "denied"


# -- health ------------------------------------------------------------------------------------
def test_no_daemon_of_the_lake_is_failing_its_passes(lake: Lake) -> None:
    rows = {r.name: r for r in lake.status()}
    assert rows["rucio-reaper"].state == "up", rows["rucio-reaper"].last_error
    assert [(n, r.last_error) for n, r in rows.items() if r.state == "degraded"] == []


def test_status_reports_a_daemon_whose_passes_keep_failing_as_degraded(lake: Lake, tmp_path: Path) -> None:
    # The reaper exactly as the lake used to run it (--sleep-time 1): alive, and every pass
    # fails with a TypeError. It runs in the lake's daemon group (one process, a thread per
    # daemon, a log per daemon) with a healthy undertaker beside it, in a lake of its own,
    # against the real lake's catalogue: the reaper's row is degraded, the undertaker's not.
    state = tmp_path / "lake"
    settings = Settings(lake={**lake.settings.lake.model_dump(), "state_dir": state, "manage": ["daemons"]})
    mini = Lake(settings)
    group = DaemonGroup(settings, mini.paths)
    proc = ManagedProcess(group.name, mini.paths.run, mini.paths.logs)
    argv = [*group.argv()[: group.argv().index("--daemon")]]
    argv += ["--daemon", "reaper --sleep-time 1 --chunk-size 100", "--daemon", "undertaker --sleep-time 1"]
    # Its own Rucio cache: through the lake's memcached it would find the RSEs the lake's reaper
    # paused and skip the passes that fail (nothing answers at port 1: Rucio caches in memory).
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(lake.paths.rucio_cfg)
    cfg["cache"] = {"url": "127.0.0.1:1"}
    own_cfg = tmp_path / "rucio.cfg"
    own_cfg.touch(mode=0o600)
    with own_cfg.open("w") as f:
        cfg.write(f)
    proc.start(argv, env={**rucio_env(lake.paths), "RUCIO_CONFIG": str(own_cfg)}, cwd=tmp_path)
    try:
        row: Any = None

        def degraded() -> bool:
            nonlocal row
            row = next(r for r in mini.status() if r.name == "rucio-reaper")
            return bool(row.state == "degraded") or not proc.is_running()

        assert wait_until(degraded, DEADLINE_S, interval=1.0) and row.state == "degraded", row
        assert "TypeError" in row.last_error
        rows = {r.name: r for r in mini.status()}
        assert rows["rucio-daemons"].state == "up" and rows["rucio-undertaker"].state == "up", rows
        assert rows["rucio-reaper"].pid == rows["rucio-daemons"].pid == proc.process().pid  # type: ignore[union-attr]
        env = {**os.environ, "INLET_LAKE__STATE_DIR": str(state), "INLET_LAKE__MANAGE": '["daemons"]'}
        res = subprocess.run(
            [venv_bin("inlet"), "lake", "status"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert res.returncode == 1
        assert "degraded" in res.stderr and "TypeError" in res.stderr
    finally:
        proc.stop()
