"""A private PostgreSQL cluster holding the Rucio catalogue.

Rucio on SQLite fails under concurrent gunicorn workers ("database is locked"), so the lake
runs a real PostgreSQL of its own, on its own port and socket directory: it never touches a
system cluster. fsync is off: this is a development lake, and speed of start-up matters more
than surviving a power cut.

Every connection, local socket included, authenticates with a password (scram-sha-256): the
lake runs on shared hosts, where "trust" would hand the Rucio catalogue to every local user.
A cluster made by an older lake with "trust" is switched over on its next `up`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, write_private

log = logging.getLogger(__name__)

DB_USER = "rucio"
DB_NAME = "rucio"
AUTH = "scram-sha-256"


def find_pg_bin(configured: Path | None) -> Path:
    if configured is not None:
        candidates = [configured]
    else:
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "postgres").is_file():
            return cand
    raise LakeError(
        "postgres: no PostgreSQL server binaries (initdb, postgres) found"
        + (f" in {configured}" if configured else " under /usr/lib/postgresql/*/bin"),
        "run scripts/setup.sh (installs Debian's postgresql), or set [lake] postgres_bin",
    )


class Postgres(Service):
    name = "postgres"
    port_setting = "[lake] postgres_port / INLET_LAKE__POSTGRES_PORT"

    @property
    def port(self) -> int:
        return self.settings.lake.postgres_port

    @property
    def datadir(self) -> Path:
        return self.paths.data / "postgres"

    @property
    def sockdir(self) -> Path:
        return self.paths.run / "pgsock"

    @property
    def _marker(self) -> Path:
        return self.paths.data / ".postgres-initialised"

    @property
    def password(self) -> str:
        return self.settings.lake.postgres_password

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{DB_USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def hba(self) -> Path:
        return self.datadir / "pg_hba.conf"

    def user(self) -> str | None:
        # PostgreSQL refuses to run as root.
        return "postgres" if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        user = self.user()
        if user is not None:
            shutil.chown(path, user=user, group=user)

    def prepare(self) -> None:
        self.sockdir.mkdir(parents=True, exist_ok=True)
        self._chown(self.sockdir)
        if self._marker.exists():
            return
        if self.datadir.exists():
            log.warning("postgres: %s is a half-initialised cluster, re-creating it", self.datadir)
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True)
        self._chown(self.datadir)
        initdb = find_pg_bin(self.settings.lake.postgres_bin) / "initdb"
        # The superuser's password goes in through a 0600 file that only initdb reads, then goes.
        pwfile = self.sockdir / ".initdb-password"
        write_private(pwfile, self.password + "\n", owner=self.user())
        cmd = [str(initdb), "-D", str(self.datadir), "-U", DB_USER, f"--auth={AUTH}", f"--pwfile={pwfile}"]
        cmd += ["-E", "UTF8", "--no-sync"]
        user = self.user()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, user=user, cwd="/", check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise LakeError(
                f"postgres: initdb failed in {self.datadir}:\n{res.stderr.strip()[-1500:]}",
                "the state directory must be writable and traversable by the 'postgres' user; "
                "choose another one with [lake] state_dir / INLET_LAKE__STATE_DIR",
            )
        self._marker.write_text(str(initdb) + "\n")

    def argv(self) -> list[str]:
        postgres = find_pg_bin(self.settings.lake.postgres_bin) / "postgres"
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Every backend maps the shared buffers and counts the pages it touched in its own RSS:
            # with ~15 backends under the flow, 32MB made PostgreSQL ~550 MB of summed RSS. Pages
            # beyond these stay in the OS page cache (a copy away, no disk read).
            "shared_buffers": "16MB",
            "max_connections": "200",
            # No logical replication: without workers PostgreSQL does not start their launcher.
            "max_logical_replication_workers": "0",
            "log_min_messages": "warning",
        }
        argv = [str(postgres), "-D", str(self.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _connect(self, dbname: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=DB_USER,
            password=self.password,
            dbname=dbname,
            connect_timeout=2,
            autocommit=True,
        )

    def ready(self) -> bool:
        try:
            with self._connect("postgres") as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError as exc:
            # The server answers, it refuses the password: after_start() says what to do.
            return "password authentication failed" in str(exc)
        except psycopg.Error:
            return False

    def trusting(self) -> bool:
        """True for a cluster made by an older lake, whose pg_hba.conf trusts every local connection."""
        try:
            text = self.hba.read_text()
        except (FileNotFoundError, PermissionError):
            return False
        return any(line.split()[-1:] == ["trust"] for line in text.splitlines() if not line.lstrip().startswith("#"))

    def _require_password(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Switch a trusting cluster to password authentication, in place (no data lost)."""
        log.warning("postgres: %s trusts local connections; switching it to %s", self.datadir, AUTH)
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(DB_USER), sql.Literal(self.password)))
        text = self.hba.read_text()
        fixed = "\n".join(
            line if line.lstrip().startswith("#") else re.sub(r"\btrust\s*$", AUTH, line) for line in text.splitlines()
        )
        stat = self.hba.stat()
        self.hba.write_text(fixed + "\n")
        os.chown(self.hba, stat.st_uid, stat.st_gid)
        conn.execute("SELECT pg_reload_conf()")

    def after_start(self) -> None:
        try:
            conn = self._connect("postgres")
        except psycopg.OperationalError as exc:
            if "password authentication failed" not in str(exc):
                raise
            raise LakeError(
                f"postgres: the lake's PostgreSQL refuses [lake] postgres_password (the cluster in {self.datadir} "
                "was created with another password)",
                "set [lake] postgres_password / INLET_LAKE__POSTGRES_PASSWORD back to the old one, or start from "
                "an empty lake with `inlet lake down --purge` (deletes all lake data)",
            ) from exc
        with conn:
            if self.trusting():
                self._require_password(conn)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
