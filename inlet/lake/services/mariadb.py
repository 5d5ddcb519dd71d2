"""A private MariaDB server holding the run catalogue, as CYGNO runs it in production.

Like the lake's PostgreSQL it never touches a system server: its own data directory under
the lake state, its own port (``[lake] mariadb_port``), its own socket, no option files
read (``--no-defaults``, so /etc/mysql/my.cnf cannot move it onto port 3306). It runs as
the ``mysql`` user when the lake runs as root.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pymysql

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, require_executable

log = logging.getLogger(__name__)

DB_NAME = "inlet"
DB_USER = "inlet"
DB_PASSWORD = "inlet-secret"  # noqa: S105 - the local lake default, like [rucio] password


class MariaDB(Service):
    name = "mariadb"
    port_setting = "[lake] mariadb_port / INLET_LAKE__MARIADB_PORT"

    @property
    def port(self) -> int:
        return self.settings.lake.mariadb_port

    @property
    def datadir(self) -> Path:
        return self.paths.data / "mariadb"

    @property
    def socket(self) -> Path:
        return self.paths.run / "mariadb" / "mariadb.sock"

    @property
    def _marker(self) -> Path:
        return self.paths.data / ".mariadb-initialised"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the catalogue database (what [catalog] url should say to use it)."""
        return f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"

    def user(self) -> str | None:
        # mariadbd refuses to run as root unless told to; running it as mysql is the safe way.
        return "mysql" if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        user = self.user()
        if user is not None:
            shutil.chown(path, user=user, group=user)

    def _exe(self, name: str) -> str:
        return require_executable(name, self.name, "run scripts/setup.sh (apt-get install mariadb-server)")

    def prepare(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket.parent)
        if self._marker.exists():
            return
        if self.datadir.exists():
            log.warning("mariadb: %s is a half-initialised data directory, re-creating it", self.datadir)
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True)
        self._chown(self.datadir)
        cmd = [
            self._exe("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        user = self.user()
        if user is not None:
            cmd.append(f"--user={user}")
        res = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)
        if res.returncode != 0:
            raise LakeError(
                f"mariadb: mariadb-install-db failed in {self.datadir}:\n{(res.stderr or res.stdout).strip()[-1500:]}",
                "the state directory must be writable and traversable by the 'mysql' user; "
                "choose another one with [lake] state_dir / INLET_LAKE__STATE_DIR",
            )
        self._marker.write_text("ok\n")

    def argv(self) -> list[str]:
        return [
            self._exe("mariadbd"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.socket.parent / 'mariadbd.pid'}",
            # Its own directory (the mysql user's), never $TMPDIR: a restart from a Rucio client's
            # environment (the chaos rehearsal) carries the lake's root-owned tmp, where InnoDB
            # cannot create its temporary files and the server aborts.
            f"--tmpdir={self.socket.parent}",
            "--bind-address=127.0.0.1",
            f"--port={self.port}",
            "--skip-name-resolve",
            "--skip-log-bin",
            # A development lake: start-up speed and a small footprint over durability.
            "--innodb-buffer-pool-size=64M",
            # Buffers of engines the catalogue does not use (MyISAM's key cache) or uses only for
            # a large sort's temporary table (Aria's page cache): 128M each by default, most of the
            # server's memory at idle.
            "--key-buffer-size=4M",
            "--aria-pagecache-buffer-size=8M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=300",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
        ]

    def _root(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="", connect_timeout=2)

    def ready(self) -> bool:
        try:
            conn = self._root()
        except pymysql.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        finally:
            conn.close()

    def after_start(self) -> None:
        conn = self._root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}` CHARACTER SET utf8mb4")
                cur.execute(f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'")
                # All privileges on every database: tests create throw-away databases of their own.
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'127.0.0.1' WITH GRANT OPTION")
            conn.commit()
        finally:
            conn.close()
