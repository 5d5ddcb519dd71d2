"""Faults of the lake itself: each gives an error that names the fix and leaves things consistent.

These start small private lakes (one or two real services on free ports, in their own state
directories), so they never disturb the session's shared lake.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inlet.config import LakeSettings, RedisSettings, Settings
from inlet.lake.errors import LakeError
from inlet.lake.lake import Lake, ServiceStatus
from inlet.lake.ports import answers, free_port, wait_until
from inlet.lake.services.base import venv_bin

REPO = Path(__file__).resolve().parents[2]


def mini_lake(state: Path, manage: list[str], **lake_opts: object) -> Lake:
    settings = Settings(
        lake=LakeSettings(state_dir=state, manage=manage, postgres_port=free_port(), **lake_opts),  # type: ignore[arg-type]
        redis=RedisSettings(url=f"redis://:mini-secret@127.0.0.1:{free_port()}/0"),
    )
    return Lake(settings)


def own(rows: list[ServiceStatus]) -> list[str]:
    """States of the services this mini lake manages (status also lists external ones)."""
    return [r.state for r in rows if r.state not in ("external", "unreachable")]


@pytest.fixture
def redis_lake(tmp_path: Path) -> Iterator[Lake]:
    lake = mini_lake(tmp_path / "lake", ["redis"])
    yield lake
    lake.down()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A state directory the 'postgres' user can traverse (pytest's tmp_path is root-only)."""
    path = REPO / f".lake-faults-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_port_in_use_names_the_owner_and_the_setting(redis_lake: Lake) -> None:
    port = redis_lake.settings.redis.url.rsplit(":", 1)[1].split("/")[0]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(port)))
        squatter.listen()
        with pytest.raises(LakeError) as err:
            redis_lake.up()
    assert f"port {port}" in err.value.problem
    assert f"pid {os.getpid()}" in err.value.problem
    assert "INLET_REDIS__URL" in err.value.fix
    assert not any(redis_lake.paths.run.glob("*.pid")), "nothing may be started after the clash"


def test_missing_binary_says_how_to_install_it(tmp_path: Path) -> None:
    lake = mini_lake(tmp_path / "lake", ["activemq"], activemq_home=tmp_path / "no-activemq")
    with pytest.raises(LakeError) as err:
        lake.up()
    assert "ActiveMQ is not installed" in err.value.problem
    assert "scripts/setup.sh" in err.value.fix
    lake = mini_lake(tmp_path / "lake2", ["redis"], redis_server=str(tmp_path / "redis-server"))
    with pytest.raises(LakeError) as err:
        lake.up()
    assert "not found" in err.value.problem and "redis-server" in err.value.fix


def test_stale_pid_file_from_a_crash_is_cleared_and_the_service_started(redis_lake: Lake) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    redis_lake.paths.run.mkdir(parents=True)
    pidfile = redis_lake.paths.run / "redis.pid"
    pidfile.write_text(json.dumps({"pid": dead.pid, "create_time": 1.0, "argv": ["redis-server"]}))
    rows = redis_lake.up()
    assert own(rows) == ["up"]
    assert rows[0].pid != dead.pid


def test_a_restart_after_down_starts_nothing_and_recreates_no_state(tmp_path: Path) -> None:
    """A fault drill's restart that lands after `inlet lake down --purge` brings nothing back."""
    lake = mini_lake(tmp_path / "lake", ["redis"])
    lake.up()
    killed = lake.kill("redis")
    assert killed is not None
    lake.down()
    with pytest.raises(LakeError, match="has been brought down"):
        lake.restart("redis")
    assert not lake.service("redis").proc.pid_path.exists()
    lake.down(purge=True)
    with pytest.raises(LakeError, match="has been brought down"):
        lake.restart("redis")
    assert not lake.paths.root.exists()
    port = int(lake.settings.redis.url.rsplit(":", 1)[1].split("/")[0])
    assert not answers(port)


def test_a_killed_service_is_restarted_on_its_port(redis_lake: Lake) -> None:
    redis_lake.up()
    before = redis_lake.kill("redis")
    rows = redis_lake.restart("redis")
    assert [r.state for r in rows] == ["up"]
    assert rows[0].pid != before


def test_down_never_signals_a_process_it_did_not_start(redis_lake: Lake) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        redis_lake.paths.run.mkdir(parents=True)
        # Same pid, other start time: what a reused pid looks like after a reboot.
        (redis_lake.paths.run / "redis.pid").write_text(
            json.dumps({"pid": stranger.pid, "create_time": 12345.0, "argv": ["redis-server"]})
        )
        assert own(redis_lake.status()) == ["dead"]
        redis_lake.down()
        assert stranger.poll() is None, "down must not kill an unrelated process"
    finally:
        stranger.kill()
        stranger.wait()


def test_service_that_dies_after_start_is_reported_dead_with_its_log(redis_lake: Lake) -> None:
    rows = redis_lake.up()
    os.kill(rows[0].pid or 0, signal.SIGKILL)
    assert wait_until(lambda: own(redis_lake.status()) == ["dead"], timeout=10)
    st = redis_lake.status()[0]
    assert st.state == "dead"
    assert "Ready to accept connections" in st.log_tail
    env = {
        **os.environ,
        "INLET_LAKE__STATE_DIR": str(redis_lake.paths.root),
        "INLET_LAKE__MANAGE": '["redis"]',
        "INLET_REDIS__URL": redis_lake.settings.redis.url,
    }
    cli = subprocess.run([venv_bin("inlet"), "lake", "status"], env=env, capture_output=True, text=True)
    assert cli.returncode == 1
    assert "redis is dead" in cli.stderr
    assert own(redis_lake.up()) == ["up"], "up restarts a dead service"


def test_service_exiting_right_after_start_fails_up_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR (simulated)'\nexit 3\n")
    fake.chmod(0o755)
    lake = mini_lake(tmp_path / "lake", ["redis"], redis_server=str(fake))
    with pytest.raises(LakeError) as err:
        lake.up()
    assert "exited right after start" in err.value.problem
    assert "FATAL CONFIG FILE ERROR" in err.value.problem


def test_half_initialised_postgres_is_recreated(shared_dir: Path) -> None:
    lake = mini_lake(shared_dir, ["postgres"])
    junk = lake.paths.data / "postgres"
    junk.mkdir(parents=True)
    (junk / "half-written").write_text("initdb was interrupted here")
    try:
        rows = lake.up()
        assert own(rows) == ["up"]
        assert (junk / "PG_VERSION").exists() and not (junk / "half-written").exists()
        # The Rucio database exists: the next phase (rucio bootstrap) can rely on it.
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=lake.settings.lake.postgres_port,
            user="rucio",
            dbname="rucio",
            password=lake.settings.lake.postgres_password,
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        lake.down()


def test_postgres_of_an_older_lake_trusting_local_connections_gets_a_password(shared_dir: Path) -> None:
    import psycopg

    from inlet.lake.services.postgres import Postgres, find_pg_bin

    lake = mini_lake(shared_dir, ["postgres"])
    pg = Postgres(lake.settings, lake.paths)
    # The cluster as inlet made it before passwords: initdb -A trust, with a table of data.
    pg.datadir.mkdir(parents=True)
    user = pg.user()
    if user is not None:
        for d in (shared_dir, lake.paths.data, pg.datadir):
            shutil.chown(d, user=user, group=user)
    initdb = [str(find_pg_bin(None) / "initdb"), "-D", str(pg.datadir), "-U", "rucio", "-A", "trust", "--no-sync"]
    subprocess.run(initdb, check=True, capture_output=True, user=user, cwd="/")
    (lake.paths.data / ".postgres-initialised").write_text("old\n")
    port = lake.settings.lake.postgres_port
    try:
        assert own(lake.up()) == ["up"]
        with psycopg.connect(host="127.0.0.1", port=port, user="rucio", dbname="rucio", password="inlet-secret") as c:
            c.execute("CREATE TABLE kept (x int)")
        lake.down()
        assert own(lake.up()) == ["up"]
        with pytest.raises(psycopg.OperationalError, match=r"no password supplied|password authentication failed"):
            psycopg.connect(host="127.0.0.1", port=port, user="rucio", dbname="rucio", password="")
        with psycopg.connect(host="127.0.0.1", port=port, user="rucio", dbname="rucio", password="inlet-secret") as c:
            assert c.execute("SELECT count(*) FROM kept").fetchone() == (0,)  # data kept
    finally:
        lake.down()


def test_postgres_password_changed_after_creation_names_the_purge(shared_dir: Path) -> None:
    lake = mini_lake(shared_dir, ["postgres"])
    try:
        assert own(lake.up()) == ["up"]
        lake.down()
        other = mini_lake(shared_dir, ["postgres"], postgres_password="a-new-password")
        with pytest.raises(LakeError) as err:
            other.up()
        assert "postgres_password" in err.value.problem and "--purge" in err.value.fix
    finally:
        lake.down()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_state_dir_postgres_cannot_enter_gives_the_fix(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    lake = mini_lake(private / "lake", ["postgres"])
    with pytest.raises(LakeError) as err:
        lake.up()
    assert "initdb failed" in err.value.problem
    assert "INLET_LAKE__STATE_DIR" in err.value.fix
    assert not any(lake.paths.run.glob("*.pid")), "no server may be left running"


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lake"
    path.write_text("not a directory")
    with pytest.raises(LakeError) as err:
        mini_lake(path, ["redis"]).up()
    assert "not a directory" in err.value.problem


def test_corrupt_manifest_points_at_purge(tmp_path: Path) -> None:
    lake = mini_lake(tmp_path / "lake", ["redis"])
    lake.paths.root.mkdir(parents=True)
    (lake.paths.root / "lake.json").write_text("{half")
    with pytest.raises(LakeError) as err:
        lake.up()
    assert "inlet lake down --purge" in err.value.fix


def test_up_is_idempotent_and_down_purge_removes_state(tmp_path: Path) -> None:
    lake = mini_lake(tmp_path / "lake", ["redis"])
    first = lake.up()
    second = lake.up()
    assert first[0].pid == second[0].pid, "a second up leaves the running service alone"
    lake.down(purge=True)
    assert not lake.paths.root.exists()
    assert not _alive(first[0].pid or 0), "down waits for the process to exit"


def _alive(pid: int) -> bool:
    # Our own exited children linger as zombies until reaped: they are not running.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
