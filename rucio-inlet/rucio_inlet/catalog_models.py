"""SQLAlchemy 2.0 models of the run catalogue.

Times are stored as UTC (naive in the database, aware in Python) with microseconds, so that
the ordering of events from several writers survives a round trip through MariaDB.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine.interfaces import Dialect as _Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

from rucio_inlet.catalog_states import RunState

# Rucio's own limits: a scope is at most 25 characters, a name 255, an RSE expression 64.
SCOPE_LEN = 25
NAME_LEN = 255
RSE_LEN = 64


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python, naive UTC with microseconds in the database."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: _Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the catalogue stores UTC, pass an aware datetime")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One detector run of one experiment."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("experiment", "run_number", name="uq_runs_experiment_number"),
        # 0003: `inlet runs --state X` reads a page in (experiment, run_number) order from the index.
        Index("ix_runs_state_page", "state", "experiment", "run_number"),
        Index("ix_runs_number", "run_number"),
        Index("ix_runs_start", "start_time"),
        # 0002: a dataset-level event (datasetlock_ok, rule_ok) finds its run without a scan.
        Index("ix_runs_scope_dataset", "scope", "dataset"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment: Mapped[str] = mapped_column(String(64))
    run_number: Mapped[int] = mapped_column(BigInteger)
    run_type: Mapped[str] = mapped_column(String(32), default="physics")
    start_time: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    stop_time: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    #: Free-form run conditions (beam, trigger, stream, HV...), searchable by `inlet select`.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Data stay private to the collaboration until then (shown to Rucio as embargo_until).
    embargo_until: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    #: The Rucio scope and dataset name that group this run's files.
    scope: Mapped[Optional[str]] = mapped_column(String(SCOPE_LEN))
    dataset: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    state: Mapped[RunState] = mapped_column(
        Enum(RunState, native_enum=False, length=16, create_constraint=False, validate_strings=True),
        default=RunState.RECORDING,
    )
    state_reason: Mapped[Optional[str]] = mapped_column(Text)
    state_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: Optimistic concurrency: every UPDATE checks and bumps it, so a lost update raises.
    version: Mapped[int] = mapped_column(Integer, default=1)

    files: Mapped[list[RunFile]] = relationship(back_populates="run", cascade="all, delete-orphan")
    transitions: Mapped[list[RunTransition]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="RunTransition.id"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run_number}"

    def __repr__(self) -> str:
        return f"<Run {self.label} {self.state}>"


class RunFile(Base):
    """One raw file of a run, known to Rucio as the DID scope:name."""

    __tablename__ = "run_files"
    __table_args__ = (
        UniqueConstraint("scope", "name", name="uq_run_files_did"),
        # 0002: one run's files in name order (reconcile, the Rucio check) from the index alone.
        Index("ix_run_files_run_name", "run_id", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(SCOPE_LEN))
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    size: Mapped[int] = mapped_column(BigInteger)
    adler32: Mapped[Optional[str]] = mapped_column(String(8))
    md5: Mapped[Optional[str]] = mapped_column(String(32))
    closed_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    uploaded_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    registered_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="files")
    availability: Mapped[list[FileAvailability]] = relationship(
        back_populates="file", cascade="all, delete-orphan", order_by="FileAvailability.available_at"
    )

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"


class FileAvailability(Base):
    """When a file became available on an RSE (one row per file and RSE, first time wins)."""

    __tablename__ = "file_availability"
    __table_args__ = (
        UniqueConstraint("file_id", "rse", name="uq_file_availability_file_rse"),
        Index("ix_file_availability_rse", "rse"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("run_files.id", ondelete="CASCADE"))
    rse: Mapped[str] = mapped_column(String(RSE_LEN))
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    file: Mapped[RunFile] = relationship(back_populates="availability")


class RunTransition(Base):
    """Audit trail of the life cycle: who moved a run where, when and why."""

    __tablename__ = "run_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[Optional[str]] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="transitions")


class ConditionKey(Base):
    """Every key ever used in runs' conditions: lets the Rucio plugin claim them cheaply."""

    __tablename__ = "condition_keys"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)


class ProcessedEvent(Base):
    """The listener's exactly-once ledger: a row per handled event, written in the same
    transaction as the event's effects, so a redelivered message is recognised and skipped."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("consumer", "event_key", name="uq_processed_events_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[Optional[str]] = mapped_column(String(64))
    processed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxMessage(Base):
    """A side effect outside the database (Celery task, webhook), written in the transaction
    that decided it and sent only after that transaction committed."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        Index("ix_outbox_pending", "sent_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Passed to the receiver, which must drop a message it has already acted on.
    idempotency_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[Optional[str]] = mapped_column(Text)


class FollowerCursor(Base):
    """Where a named follower (``inlet follow --name``) stands in the availability stream.

    ``position`` is :class:`inlet.follow.source.Cursor`'s token: the highest settled
    ``file_availability.id``, plus the ids above it already handed out. Written after the
    consumer has finished with a file, so a restart repeats nothing and misses nothing.
    """

    __tablename__ = "follower_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    #: The selection and RSE it follows: a restart under the same name with other ones is refused.
    selection: Mapped[str] = mapped_column(Text)
    rse: Mapped[Optional[str]] = mapped_column(String(RSE_LEN))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
