"""The real local lake, started once per test session.

If a healthy lake is already up (a developer's, or one left by ``INLET_KEEP_LAKE=1``), the
session reuses it and leaves it running. Otherwise the fixture starts one and stops it at the
end. Everything comes from inlet's normal configuration, so ``INLET_*`` variables move a
test session to other ports or another state directory.

Also what the uploader's tests share: an uploader environment with a Redis database of each
test module's own (``uploader_env``), real Celery workers (``start_worker``, or the
``celery_worker`` factory that stops them at the end of the module), real watchers
(``start_watcher``/``stop_watcher``), DAQ files
(``daq_files``) and ``wait_for``; and what arrives on a broker destination (``Topic``). The
plain functions are imported by the tests (``from tests.integration.conftest import ...``);
the factories are fixtures.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from inlet.catalog import open_catalog
from inlet.catalog.db import Catalog
from inlet.config import BrokerSettings, load_settings
from inlet.lake.lake import Lake
from inlet.messaging import Connection, Message, Role, Subscription


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.lake)


# Tests add RSEs of their own (a public RSE, RSEs with hostile paths), named per run, without
# distances to the lake's RSEs. Left writable, a later rule to an expression such as
# `rse_type=DISK` (a tape recall) may pick one and stay STUCK without sources; so they are closed
# for writing when the session starts (leftovers of earlier sessions on a kept lake) and ends.
_RETIRE_TEST_RSES = r"""
import sys
from rucio.client import Client
c = Client()
keep = set(sys.argv[1:])
for rse in c.list_rses():
    if rse["rse"] not in keep and rse.get("availability_write", True):
        c.update_rse(rse["rse"], {"availability_write": False})
"""


def _retire_test_rses(lake: Lake) -> None:
    from inlet.lake.topology import lake_topology

    s = lake.settings
    keep = [r.name for r in lake_topology(str(lake.paths.data), s.s3.endpoint, s.s3.bucket, s).rses]
    res = subprocess.run(
        [sys.executable, "-c", _RETIRE_TEST_RSES, *keep],
        env={**os.environ, **lake.exports()},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.fixture(scope="session")
def lake() -> Iterator[Lake]:
    lake = Lake(load_settings())
    rows = lake.status()
    reuse = bool(rows) and all(r.ok for r in rows)
    if not reuse:
        rows = lake.up()
        bad = [r for r in rows if not r.ok]
        assert not bad, f"lake not healthy: {bad}"
    _retire_test_rses(lake)
    yield lake
    _retire_test_rses(lake)
    if not reuse and os.environ.get("INLET_KEEP_LAKE") != "1":
        lake.down()


@pytest.fixture(scope="session")
def rucio_env(lake: Lake) -> dict[str, str]:
    """Process environment for running the plain `rucio` CLI against the lake."""
    return {**os.environ, **lake.exports()}


BIN = Path(sys.executable).parent


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 120.0, every: float = 0.3) -> Any:
    """``cond()``'s first true value; an AssertionError naming WHAT if none comes within TIMEOUT s
    (a bound against a hang, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what}")


class Topic:
    """What arrives on a broker destination from the subscription on (confirmed by the broker).

    ``inbox`` hands over each :class:`~inlet.messaging.Message` once; ``docs`` keeps every
    JSON body seen, in order, for tests that look for one event among many. Subscribed
    from :meth:`open` (or entering a ``with`` block) to :meth:`close`.
    """

    def __init__(self, broker: BrokerSettings, destination: str, *, role: Role = "inlet") -> None:
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.docs: list[dict[str, Any]] = []
        sub = Subscription(destination, id=f"test-{uuid.uuid4().hex[:12]}")
        self.conn = Connection(broker, role=role, subscriptions=[sub], on_message=self._arrived)

    def _arrived(self, message: Message) -> None:
        try:
            doc = json.loads(message.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            self.docs.append(doc)
        self.inbox.put(message)

    def open(self) -> Self:
        self.conn.connect()
        return self

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()


def inlet(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``inlet ARGS`` as a process in ENV, its output captured (a bound of TIMEOUT s against a hang)."""
    return subprocess.run(
        [str(BIN / "inlet"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def python_child(env: dict[str, str], script: str, *args: str, stdin: str | None = None) -> str:
    """What SCRIPT prints, run by a child Python in ENV (Rucio's client and Celery read their
    configuration once per process); an AssertionError with its last words if it fails."""
    cmd = [sys.executable, "-c", script, *args]
    res = subprocess.run(cmd, input=stdin, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


#: Queues one batch straight to the workers, as `inlet watch` does: no client-side check.
_QUEUE_BATCH = (
    "import json,sys; from inlet.uploader.celery_app import upload_batch; "
    "r = upload_batch.delay(json.loads(sys.argv[1]), int(sys.argv[2]), 'raw'); "
    "print(json.dumps(r.get(timeout=120)))"
)


def queue_batch(env: dict[str, str], batch: list[dict[str, Any]], run: int) -> dict[str, Any]:
    """BATCH of RUN (stream raw) through a worker without the CLI's checks; the worker's result."""
    out: dict[str, Any] = json.loads(python_child(env, _QUEUE_BATCH, json.dumps(batch), str(run)))
    return out


def daq_files(root: Path, run: int, n: int, size: int = 85_000) -> list[Path]:
    """N DAQ files of RUN under ROOT, named as the DAQ names them, of random bytes."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(1, n + 1):
        p = root / f"run{run:06d}_pmt_{i:04d}.mid.gz"
        p.write_bytes(os.urandom(size))
        files.append(p)
    return files


def start_worker(
    env: dict[str, str], log: Path, *, name: str | None = None, concurrency: int = 1, ready: bytes = b"ready."
) -> subprocess.Popen[bytes]:
    """A real uploader worker (`celery -A inlet.uploader worker`) in a session of its own, once its
    log says READY. Its name (``<log stem>@test`` by default) is what pacing's grant log records."""
    argv = [str(BIN / "celery"), "-A", "inlet.uploader", "worker", "-c", str(concurrency)]
    argv += ["-n", name or f"{log.stem}@test", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    proc = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(f"worker {log.stem}", lambda: ready in log.read_bytes() or proc.poll() is not None, 120)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def stop_worker(proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    """Stop a worker from ``start_worker`` and its pool (SIGTERM to its session; SIGKILL if it hangs)."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def start_watcher(
    env: dict[str, str], daq: Path, log: Path, *, stable: float, interval: float
) -> subprocess.Popen[bytes]:
    """A real ``inlet watch DAQ`` (``--stable``/``--interval`` as given), its output in ``log``."""
    argv = [str(BIN / "inlet"), "watch", str(daq), "--stable", f"{stable:g}", "--interval", f"{interval:g}"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_watcher(proc: subprocess.Popen[bytes]) -> None:
    """Stop a watcher from ``start_watcher`` (SIGTERM) and wait for it to exit."""
    proc.terminate()
    proc.wait(30)


#: Redis databases handed to test modules, one each (the lake's own database is never handed out).
_REDIS_DBS = itertools.count(1)
_MODULE_DB: dict[str, int] = {}


def _module_redis_db(module: str, lake_db: int) -> int:
    if module not in _MODULE_DB:
        db = next(_REDIS_DBS)
        db = next(_REDIS_DBS) if db == lake_db else db
        assert db < 16, "more test modules than Redis databases: give Redis more (its `databases`)"
        _MODULE_DB[module] = db
    return _MODULE_DB[module]


UploaderEnv = Callable[..., dict[str, str]]


@pytest.fixture(scope="module")
def uploader_env(lake: Lake, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> UploaderEnv:
    """Makes the environment of an uploader (CLI and workers) on the lake: this module's own Redis
    database, a queue of its own per call (nothing left over from another test reaches its
    worker), state and quarantine under ROOT, DAQ roots: pytest's temporary directory. Keyword
    arguments are further ``[uploader]`` settings, e.g. ``batch_size=1``."""
    base, _, lake_db = lake.settings.redis.url.rpartition("/")
    url = f"{base}/{_module_redis_db(request.module.__name__, int(lake_db or 0))}"

    def make(name: str, root: Path | None = None, **uploader: Any) -> dict[str, str]:
        state = root or tmp_path_factory.mktemp(name)
        return {
            **os.environ,
            **lake.rucio_client_env(),
            **lake.exports(),
            "INLET_REDIS__URL": url,
            "INLET_UPLOADER__QUEUE": f"inlet.upload.{name}-{uuid.uuid4().hex[:8]}",
            "INLET_UPLOADER__STATE_DIR": str(state / "state"),
            "INLET_UPLOADER__QUARANTINE_DIR": str(state / "quarantine"),
            "INLET_UPLOADER__DAQ_ROOTS": json.dumps([str(tmp_path_factory.getbasetemp())]),
            **{f"INLET_UPLOADER__{key.upper()}": str(value) for key, value in uploader.items()},
        }

    return make


@pytest.fixture(scope="module")
def celery_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts workers as ``start_worker`` does (``celery_worker(env, "name", concurrency=2)``),
    their logs in a temporary directory, and stops them all at the end of the module."""
    logs = tmp_path_factory.mktemp("workers")
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = start_worker(env, logs / f"{name}.log", name=f"{name}@test", **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_worker(proc)


@pytest.fixture
def mariadb_url(lake: Lake) -> Iterator[str]:
    """A throw-away database on the lake's MariaDB, dropped after the test."""
    import pymysql

    from inlet.lake.services.mariadb import DB_PASSWORD, DB_USER, MariaDB

    server = MariaDB(lake.settings, lake.paths)
    name = f"inlet_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=DB_USER, password=DB_PASSWORD)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{server.port}/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


@pytest.fixture
def catalog(mariadb_url: str) -> Iterator[tuple[str, Catalog]]:
    """(URL, Catalog) of a fresh run catalogue in a database of its own on the lake's MariaDB."""
    cat = open_catalog(mariadb_url)
    yield mariadb_url, cat
    cat.dispose()
