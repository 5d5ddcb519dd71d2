"""initial run catalogue

Revision ID: 0001
Revises:
Create Date: 2026-11-21 23:19:13.029296
"""

from __future__ import annotations

import rucio_inlet.catalog_models
import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:

    op.create_table(
        "condition_keys", sa.Column("key", sa.String(length=64), nullable=False), sa.PrimaryKeyConstraint("key")
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_pending", ["sent_at", "id"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=True),
        sa.Column("processed_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consumer", "event_key", name="uq_processed_events_key"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("run_number", sa.BigInteger(), nullable=False),
        sa.Column("run_type", sa.String(length=32), nullable=False),
        sa.Column("start_time", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("stop_time", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("embargo_until", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("scope", sa.String(length=25), nullable=True),
        sa.Column("dataset", sa.String(length=255), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "RECORDING",
                "CLOSED",
                "UPLOADED",
                "ON_S3",
                "ON_TAPE",
                "RECONSTRUCTED",
                "ABORTED",
                "UPLOAD_FAILED",
                "S3_FAILED",
                "TAPE_FAILED",
                "RECO_FAILED",
                name="runstate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("state_changed_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.Column("n_files", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment", "run_number", name="uq_runs_experiment_number"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_number", ["run_number"], unique=False)
        batch_op.create_index("ix_runs_start", ["start_time"], unique=False)
        batch_op.create_index("ix_runs_state", ["state"], unique=False)

    op.create_table(
        "run_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("adler32", sa.String(length=8), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("closed_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("uploaded_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("registered_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=True),
        sa.Column("created_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "name", name="uq_run_files_did"),
    )
    with op.batch_alter_table("run_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_files_run_id"), ["run_id"], unique=False)

    op.create_table(
        "run_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_transitions_run_id"), ["run_id"], unique=False)

    op.create_table(
        "file_availability",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("rse", sa.String(length=64), nullable=False),
        sa.Column("available_at", rucio_inlet.catalog_models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["run_files.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id", "rse", name="uq_file_availability_file_rse"),
    )
    with op.batch_alter_table("file_availability", schema=None) as batch_op:
        batch_op.create_index("ix_file_availability_rse", ["rse"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping them one by one first fails on MariaDB for
    # the indexes that back a foreign key.
    for table in (
        "file_availability",
        "run_transitions",
        "run_files",
        "runs",
        "processed_events",
        "outbox",
        "condition_keys",
    ):
        op.drop_table(table)
