"""The lake as a whole: start, stop and inspect its services in dependency order."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from inlet import __version__
from inlet.config import Settings
from inlet.errors import InletError
from inlet.lake.errors import LakeError
from inlet.lake.ports import answers, wait_until
from inlet.lake.process import ManagedProcess
from inlet.lake.services.activemq import ActiveMQ
from inlet.lake.services.base import LakePaths, Service
from inlet.lake.services.conveyor import Conveyor
from inlet.lake.services.daemons import rucio_daemons
from inlet.lake.services.inlet_services import ListenerService, UploaderWorker
from inlet.lake.services.mariadb import MariaDB
from inlet.lake.services.memcached import Memcached, memcached_flush
from inlet.lake.services.postgres import Postgres
from inlet.lake.services.redis import Redis
from inlet.lake.services.rucio_server import RucioServer, rucio_env, run_rucio_module
from inlet.lake.services.s3 import S3Endpoint
from inlet.lake.topology import lake_topology

log = logging.getLogger(__name__)

#: Services started together; a phase starts once the previous one answers.
PHASES: tuple[tuple[str, ...], ...] = (
    ("postgres", "activemq", "s3", "redis", "mariadb", "memcached"),
    ("rucio",),
    ("daemons",),
    ("conveyor",),
    ("uploader", "listener"),
)

#: How long a daemon must stay alive after start to count as started (catches config errors).
DAEMON_SETTLE_S = 2.0

#: A daemon is "degraded" when its log shows this many failed passes (a logged traceback each:
#: Rucio's daemon loop logs one per pass that raised) within the last DEGRADED_WINDOW_S seconds.
#: Alive is not healthy: the reaper once failed every pass for months while status said "up".
DEGRADED_FAILURES = 3
DEGRADED_WINDOW_S = 120.0

_RECORD = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})[,.]?\d*\s+(.*)$")
_LEVEL = re.compile(r"^(?:\S+\s+){0,3}?(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")


@dataclass
class Failures:
    """Failed passes a daemon logged recently, and the last error line among them."""

    count: int
    last_error: str


def recent_failures(log_path: Path, since: float, now: float, window: float = DEGRADED_WINDOW_S) -> Failures:
    """Failed passes in the log of a daemon started at ``since``, within ``window`` seconds of ``now``.

    Both Rucio's daemons and ``inlet daemon`` log ``<asctime> ... LEVEL ... message`` records,
    a traceback following the record that reported it.
    """
    try:
        with log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 262144))
            lines = fh.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return Failures(0, "")
    count, last_error = 0, ""
    stamp: float | None = None
    message, level, tail, traceback = "", "", "", False

    def close() -> None:
        nonlocal count, last_error
        if stamp is not None and traceback and stamp >= max(since, now - window) - 1:
            count += 1
            last_error = tail or message
        elif stamp is not None and level in ("ERROR", "CRITICAL") and stamp >= max(since, now - window) - 1:
            last_error = message

    for line in lines:
        m = _RECORD.match(line)
        if m:
            close()
            try:
                stamp = time.mktime(time.strptime(m[1].replace("T", " "), "%Y-%m-%d %H:%M:%S"))
            except ValueError:
                stamp = None
            lv = _LEVEL.match(m[2])
            level, message, tail, traceback = (lv[1] if lv else ""), m[2].strip(), "", False
        elif stamp is not None:
            if line.startswith("Traceback (most recent call last)"):
                traceback = True
            elif line.strip() and not line.startswith((" ", "\t")):
                tail = line.strip()  # the exception line closes a traceback
    close()
    return Failures(count, last_error)


@dataclass
class ServiceStatus:
    name: str
    state: str  # up | degraded | starting | dead | down | external
    pid: int | None
    endpoint: str
    rss: int = 0
    log_tail: str = ""
    log_path: str = ""
    #: For a degraded daemon: the error its failing passes end with.
    last_error: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("up", "external")


Progress = Callable[[str, str], None]


def _quiet(_name: str, _msg: str) -> None:
    pass


class Lake:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = LakePaths(settings.lake.state_dir)

    # -- composition -------------------------------------------------------------------
    def groups(self) -> dict[str, list[Service]]:
        s, p = self.settings, self.paths
        return {
            "postgres": [Postgres(s, p)],
            "activemq": [ActiveMQ(s, p)],
            "s3": [S3Endpoint(s, p)],
            "redis": [Redis(s, p)],
            "mariadb": [MariaDB(s, p)],
            "memcached": [Memcached(s, p)],
            "rucio": [RucioServer(s, p)],
            "daemons": rucio_daemons(s, p),
            "conveyor": [Conveyor(s, p)],
            "uploader": [UploaderWorker(s, p)],
            "listener": [ListenerService(s, p)],
        }

    def _phases(self) -> list[tuple[tuple[str, ...], list[Service]]]:
        """Each start phase with the managed services it starts together, in start order."""
        groups = self.groups()
        manage = self.settings.lake.manage
        return [(phase, [svc for g in phase if g in manage for svc in groups[g]]) for phase in PHASES]

    def managed(self) -> list[Service]:
        return [svc for _, batch in self._phases() for svc in batch]

    # -- state directory ---------------------------------------------------------------
    def _check_state_dir(self) -> None:
        root = self.paths.root
        if root.exists() and not root.is_dir():
            raise LakeError(
                f"the lake state directory {root} exists but is not a directory",
                "move that file away, or choose another directory with [lake] state_dir / INLET_LAKE__STATE_DIR",
            )
        manifest = root / "lake.json"
        if manifest.exists():
            try:
                json.loads(manifest.read_text())
            except ValueError as exc:
                raise LakeError(
                    f"the lake manifest {manifest} is corrupt ({exc})",
                    "run `inlet lake down --purge` to start from an empty lake",
                ) from exc
        for d in (self.paths.conf, self.paths.data, self.paths.logs, self.paths.run, self.paths.tmp):
            d.mkdir(parents=True, exist_ok=True)
        if not manifest.exists():
            manifest.write_text(json.dumps({"inlet": __version__, "created": time.time()}))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state directory (parallel test sessions share a lake)."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with (self.paths.root / "lake.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- up ----------------------------------------------------------------------------
    def up(self, progress: Progress = _quiet) -> list[ServiceStatus]:
        if "rucio" in self.settings.lake.manage and "postgres" not in self.settings.lake.manage:
            raise LakeError(
                "the lake's Rucio server needs the lake's PostgreSQL",
                "keep 'postgres' in [lake] manage, or drop 'rucio' too and set [rucio] config to a site rucio.cfg",
            )
        self._check_state_dir()
        pg = Postgres(self.settings, self.paths)
        if "postgres" in self.settings.lake.manage and pg.proc.is_running() and pg.trusting():
            # Switching a live cluster to passwords would cut off the Rucio processes already running.
            raise LakeError(
                "the running lake's PostgreSQL trusts every local connection (made by an older inlet)",
                "restart the lake: `inlet lake down` then `inlet lake up` switches it to password "
                "authentication and keeps all data",
            )
        with self._locked():
            for phase, batch in self._phases():
                self._start_batch(batch, progress)
                if "mariadb" in phase:
                    # Before Rucio starts: its run-metadata plugin reads the catalogue.
                    progress("catalog", "migrating the run catalogue schema")
                    self.upgrade_catalog()
                if phase == ("rucio",) and "rucio" in self.settings.lake.manage:
                    progress("topology", "creating RSEs, distances, limits, scopes")
                    self.bootstrap_topology()
                    if "postgres" in self.settings.lake.manage:
                        self.install_wake_triggers()
        return self.status()

    def _start_batch(self, batch: list[Service], progress: Progress) -> None:
        started: list[Service] = []
        for svc in batch:
            svc.proc.clear_stale()
            if svc.proc.is_running():
                progress(svc.name, "already running")
                if svc.ready():
                    # Idempotent; finishes the set-up of a service whose earlier `up` failed
                    # after it started (e.g. PostgreSQL up, but the rucio database never created).
                    svc.after_start()
                continue
            svc.check()
            progress(svc.name, "preparing")
            svc.prepare()
            pid = svc.start()
            progress(svc.name, f"started (pid {pid})")
            started.append(svc)
        timeout = self.settings.lake.start_timeout
        for svc in started:
            ok = wait_until(lambda s=svc: s.ready() or not s.proc.is_running(), timeout)  # type: ignore[misc]
            if not svc.proc.is_running():
                raise self._died(svc)
            if not ok or not svc.ready():
                raise LakeError(
                    f"{svc.name} did not answer within {timeout:.0f} s. Last lines of {svc.proc.log_path}:\n"
                    + svc.proc.log_tail(),
                    "fix the cause above, then `inlet lake up` again (raise [lake] start_timeout on a slow machine)",
                )
            svc.after_start()
            progress(svc.name, f"up at {svc.endpoint}")
        if started and all(s.name.startswith("rucio-") for s in started):
            time.sleep(DAEMON_SETTLE_S)
            for svc in started:
                if not svc.proc.is_running():
                    raise self._died(svc)

    @staticmethod
    def _died(svc: Service) -> LakeError:
        return LakeError(
            f"{svc.name} exited right after start. Last lines of {svc.proc.log_path}:\n{svc.proc.log_tail()}",
            "fix the cause above, then `inlet lake up` again",
        )

    def upgrade_catalog(self) -> None:
        from inlet.catalog.db import CatalogError, upgrade

        try:
            upgrade(self.settings.catalog_url())
        except CatalogError as exc:
            problem, _, fix = str(exc).partition("\n  fix: ")
            raise LakeError(problem, fix or "check [catalog] url") from exc

    def install_wake_triggers(self) -> None:
        """The triggers that wake the flow daemons (idempotent; harmless with [lake] flow_wake off)."""
        from inlet.plugins.flow_daemons import install_wake_triggers

        try:
            install_wake_triggers(Postgres(self.settings, self.paths).url)
        except InletError as exc:
            raise LakeError(
                exc.problem, "check the postgres log in the lake's logs directory, then `inlet lake up` again"
            ) from exc

    def bootstrap_topology(self) -> None:
        topo = lake_topology(str(self.paths.data / "rses"), self.settings.s3.endpoint, self.settings.s3.bucket)
        # The catalogue persists with the state directory: a topology applied once stays applied,
        # so a warm `up` skips the REST round trips (a changed topology has another digest).
        digest = hashlib.sha256(topo.to_json().encode()).hexdigest()[:16]
        marker = self.paths.data / f".topology-{digest}"
        if marker.exists():
            return
        for rse in topo.rses:
            if rse.protocols[0].scheme == "file":
                (self.paths.data / "rses" / rse.name).mkdir(parents=True, exist_ok=True)
        out = run_rucio_module(
            "inlet.lake.topology",
            self.rucio_client_env(),
            "creating the lake topology (RSEs, distances, limits, scopes)",
            "check `inlet lake status` and the rucio log; `inlet lake up` re-runs it safely",
            stdin=topo.to_json(),
            args=("-",),
        )
        for line in out.splitlines():
            log.info("%s", line)
        self.forget_rucio_cache()
        marker.write_text(topo.to_json())

    def forget_rucio_cache(self) -> None:
        """Drop Rucio's cached RSE data after the topology changed it behind the cache.

        Rucio caches an RSE's protocols together with its attributes (lfn2pfn_algorithm among
        them) and setting an attribute does not invalidate that entry: without this, the server
        kept answering with the hash layout for minutes after a cold start.
        """
        if "memcached" not in self.settings.lake.manage:
            return
        try:
            memcached_flush(self.settings.lake.memcached_port)
        except OSError as exc:
            raise LakeError(
                f"could not flush Rucio's cache (memcached) after creating the topology: {exc}",
                "check `inlet lake status`, then `inlet lake up` again",
            ) from exc

    # -- environment for clients ---------------------------------------------------------
    def rucio_client_env(self) -> dict[str, str]:
        if self.settings.rucio.config is not None:
            return {"RUCIO_CONFIG": str(self.settings.rucio.config)}
        return rucio_env(self.paths)

    def exports(self) -> dict[str, str]:
        env = {"RUCIO_CONFIG": self.rucio_client_env()["RUCIO_CONFIG"]}
        env["INLET_LAKE__STATE_DIR"] = str(self.paths.root)
        return env

    # -- status / down -------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        out: list[ServiceStatus] = []
        for svc in self.managed():
            proc = svc.proc.process()
            if proc is not None:
                state = "up" if svc.ready() else "starting"
                st = ServiceStatus(svc.name, state, proc.pid, svc.endpoint, rss=svc.proc.rss())
                if state == "up" and svc.name.startswith("rucio-"):
                    failed = recent_failures(svc.proc.log_path, since=proc.create_time(), now=time.time())
                    if failed.count >= DEGRADED_FAILURES:
                        st.state = "degraded"
                        st.last_error = failed.last_error
            elif svc.proc.pid_path.exists():
                rec = svc.proc.record()
                st = ServiceStatus(svc.name, "dead", rec.pid if rec else None, svc.endpoint)
            else:
                st = ServiceStatus(svc.name, "down", None, svc.endpoint)
            if st.state in ("dead", "starting", "degraded"):
                st.log_tail = svc.proc.log_tail()
            st.log_path = str(svc.proc.log_path)
            out.append(st)
            out.extend(self._member_status(svc, st))
        out.extend(self._external_status())
        return out

    def _member_status(self, svc: Service, group: ServiceStatus) -> list[ServiceStatus]:
        """A row per daemon running as a thread of ``svc``'s process: the process's state, and
        degraded on the daemon's own failing passes (its own log). Memory is the process's row."""
        proc = svc.proc.process()
        out = []
        for name in svc.members():
            member = ManagedProcess(name, self.paths.run, self.paths.logs)  # for its log only
            state = "up" if group.state == "degraded" else group.state
            st = ServiceStatus(name, state, group.pid, f"in {svc.name}", log_path=str(member.log_path))
            if state == "up" and proc is not None:
                failed = recent_failures(member.log_path, since=proc.create_time(), now=time.time())
                if failed.count >= DEGRADED_FAILURES:
                    st.state = "degraded"
                    st.last_error = failed.last_error
            if st.state in ("dead", "starting", "degraded"):
                st.log_tail = member.log_tail()
            out.append(st)
        return out

    def _external_status(self) -> list[ServiceStatus]:
        from urllib.parse import urlparse

        s = self.settings
        checks = {
            "activemq": (s.broker.host, s.broker.stomp_port),
            "s3": (urlparse(s.s3.endpoint).hostname, urlparse(s.s3.endpoint).port),
            "redis": (urlparse(s.redis.url).hostname, urlparse(s.redis.url).port),
            "rucio": (urlparse(s.rucio.host).hostname, urlparse(s.rucio.host).port),
        }
        out = []
        for name, (host, port) in checks.items():
            if name in s.lake.manage or host is None or port is None:
                continue
            state = "external" if answers(port, host) else "unreachable"
            out.append(ServiceStatus(name, state, None, f"{host}:{port}"))
        return out

    def down(self, purge: bool = False, progress: Progress = _quiet) -> None:
        with self._locked():
            # Phase by phase, in reverse start order (clients before the databases they use), and
            # the services of one phase at once: each stop is mostly waiting for a process to exit.
            for _, batch in reversed(self._phases()):
                if not batch:
                    continue
                with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                    stopped = list(pool.map(lambda svc: svc.proc.stop(), batch))
                for svc, was_running in zip(batch, stopped, strict=True):
                    if was_running:
                        progress(svc.name, "stopped")
                    else:
                        svc.proc.pid_path.unlink(missing_ok=True)
        if purge and self.paths.root.exists():
            shutil.rmtree(self.paths.root)
            progress("lake", f"removed {self.paths.root}")

    # -- fault drills ------------------------------------------------------------------------
    def service(self, name: str) -> Service:
        """The managed service called ``name`` (as ``inlet lake status`` names it)."""
        found = {svc.name: svc for svc in self.managed()}
        if name not in found:
            raise LakeError(
                f"the lake manages no service called {name!r}",
                f"give one of: {', '.join(sorted(found))} (see `inlet lake status`)",
            )
        return found[name]

    def kill(self, name: str) -> int | None:
        """``kill -9`` a running service and everything it forked, as a crash would; returns its pid.

        The pid file is left behind, as after a real crash: :meth:`restart` (or ``inlet lake up``)
        clears it. Only the process the pid file describes (start time checked) and its children
        are signalled.
        """
        return self.service(name).proc.kill()

    def restart(self, name: str, progress: Progress = _quiet) -> list[ServiceStatus]:
        """Start ``name`` again through the lake's own start path (check, prepare, start, ready).

        The same code as ``inlet lake up`` for one service: a stale pid file is cleared, and a
        service still running is left alone.

        Only a service of a lake that is up is restarted: one whose pid file is still there
        (running, or killed as a crash leaves it). After ``inlet lake down`` there is none, and a
        restart arriving late (a fault drill finishing its pause) must not bring back a service,
        or a purged state directory, that nobody would stop again.
        """
        svc = self.service(name)
        gone = LakeError(
            f"{name} was not restarted: the lake at {self.paths.root} has been brought down",
            "run `inlet lake up` to start the whole lake again",
        )
        if not self.paths.root.is_dir():
            raise gone
        with self._locked():
            if not svc.proc.pid_path.exists():
                raise gone
            self._start_batch([svc], progress)
        return [s for s in self.status() if s.name == name]

    def total_rss(self) -> int:
        return sum(s.rss for s in self.status())
