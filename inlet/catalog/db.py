"""Opening the catalogue: engine, sessions, schema migrations and retried transactions.

Other services call :func:`open_catalog` with the URL from their configuration; it brings
the schema to the newest Alembic revision first, so that no service ever runs against an
older schema than its code expects. ``inlet catalog upgrade`` does the same by hand.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import NullPool

from inlet.errors import InletError

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
#: Own name, so that the catalogue can share a database with other Alembic-managed schemas.
VERSION_TABLE = "inlet_catalog_version"

# MariaDB: 1213 deadlock (InnoDB rolled the transaction back), 1205 lock wait timeout.
_RETRYABLE_MYSQL = {1205, 1213}


URL_FIX = (
    "set [catalog] url / INLET_CATALOG__URL to sqlite:///PATH or mysql+pymysql://USER:PASSWORD@HOST:PORT/DB "
    "(empty: SQLite in the lake's state directory)"
)


class CatalogError(InletError):
    """A catalogue problem: ``problem`` and ``fix``; ``str()`` shows both."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings every catalogue user needs on that backend.

    A URL SQLAlchemy cannot parse, or whose dialect or driver is not installed, is a
    :class:`CatalogError` naming the setting, not a traceback from deep inside SQLAlchemy.
    """
    try:
        return _make_engine(url, **kwargs)
    except ArgumentError as exc:  # NoSuchModuleError too: an unknown dialect
        shown = _masked(url)
        raise CatalogError(f"the run catalogue URL {shown!r} is not usable: {exc}", URL_FIX) from exc
    except ImportError as exc:  # a known dialect whose driver is missing
        raise CatalogError(
            f"the run catalogue URL {_masked(url)!r} needs a database driver that is not installed: {exc}",
            f"install it (pip install {exc.name or 'the driver'}), or {URL_FIX}",
        ) from exc


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url if "@" not in url else "<unparsable URL>"


def _make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(
                    f"cannot create the directory of the SQLite run catalogue {database}: {exc}",
                    "point [catalog] url / INLET_CATALOG__URL at a writable place",
                ) from exc
        # Writers in several threads/processes: wait for the lock instead of failing at once.
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        if database in ("", ":memory:"):
            from sqlalchemy.pool import StaticPool

            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling starts transactions late and lets
            # RELEASE SAVEPOINT commit: take control and BEGIN ourselves (SQLAlchemy's recipe).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if database not in ("", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_recycle", 3600)
        # READ COMMITTED: a waiting writer sees the row the other writer just committed.
        kwargs.setdefault("isolation_level", "READ COMMITTED")
        kwargs.setdefault("connect_args", {"charset": "utf8mb4"})
    return create_engine(url, **kwargs)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def _lock_migrations(conn: Connection) -> None:
    """Serialise migrations across processes: services that start together (uploader workers,
    listeners) all call upgrade() on an empty database, and without a lock two of them would
    both create the first tables. The lock lives in the database server, so it spans hosts.
    SQLite needs none: its write transaction already excludes other writers."""
    dialect = conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        got = conn.execute(text("SELECT GET_LOCK('inlet_catalog_migrate', 120)")).scalar()
        if got != 1:
            raise CatalogError(
                "timed out after 120 s waiting for another process's catalogue migration",
                "run the command again once the other process (an upgrade, a starting service) has finished",
            )
    elif dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7201)"))


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe to call at every service start)."""
    engine = make_engine(url_or_engine, poolclass=NullPool) if isinstance(url_or_engine, str) else url_or_engine
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            try:
                with conn.begin():
                    _lock_migrations(conn)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
            finally:
                # GET_LOCK belongs to the connection, which a pooled engine keeps open. It is
                # released only after the commit: released before, the next process could read
                # the version table without the last revision's row and run that revision again.
                if conn.dialect.name in ("mysql", "mariadb"):
                    conn.execute(text("SELECT RELEASE_LOCK('inlet_catalog_migrate')"))
                    conn.commit()
    except (OperationalError, InterfaceError) as exc:
        raise CatalogError(
            f"cannot migrate the run catalogue at {engine.url.render_as_string(hide_password=True)}: {exc.orig}",
            "check [catalog] url / INLET_CATALOG__URL and that the database server is up (`inlet lake status`)",
        ) from exc
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def downgrade(url: str, revision: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, StaleDataError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        args = getattr(orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in _RETRYABLE_MYSQL:
            return True
        if "database is locked" in str(orig):
            return True
    return False


class Catalog:
    """An open catalogue: one engine and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def transaction(self, work: Callable[[Session], T], attempts: int = 20) -> T:
        """Run ``work`` in its own transaction, retrying it whole after a lost race.

        A race shows up as a deadlock, a lock-wait timeout, a busy SQLite file or a stale
        version (optimistic locking): in each case nothing was committed, and replaying the
        whole unit of work against the now-current rows is what keeps updates from being lost.
        ``work`` must therefore not have effects outside the session.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.session() as session:
                    return work(session)
            except Exception as exc:
                if attempt == attempts or not _retryable(exc):
                    raise
                log.debug("catalogue transaction lost a race (%s), retry %d", type(exc).__name__, attempt)
                time.sleep(random.uniform(0.001, 0.01 * attempt))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def open_catalog(url: str, migrate: bool = True, **engine_kwargs: Any) -> Catalog:
    """Open the catalogue at ``url``; with ``migrate`` (default) upgrade its schema first."""
    engine = make_engine(url, **engine_kwargs)
    if migrate:
        upgrade(engine)
    return Catalog(engine)
