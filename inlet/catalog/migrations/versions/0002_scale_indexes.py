"""indexes for a year's scale: a run found by its dataset, a run's files in name order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:55:00

See docs/performance.md for the queries each index serves.
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # datasetlock_ok / rule_ok name a run's dataset: without it every such event scans runs.
    op.create_index("ix_runs_scope_dataset", "runs", ["scope", "dataset"])
    # `inlet reconcile` and the Rucio check read one run's files in name order.
    op.create_index("ix_run_files_run_name", "run_files", ["run_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_run_files_run_name", table_name="run_files")
    op.drop_index("ix_runs_scope_dataset", table_name="runs")
