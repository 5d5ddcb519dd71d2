"""runs by state in page order: `inlet runs --state X` reads one page from the index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 17:40:00

See docs/performance.md for the queries each index serves.
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # `inlet runs --state X` pages in (experiment, run_number) order: with the state alone in
    # the index, MariaDB sorts every run in that state (most of a year's runs are ON_TAPE) to
    # return 50. The old (state) index is a prefix of this one and goes.
    op.create_index("ix_runs_state_page", "runs", ["state", "experiment", "run_number"])
    op.drop_index("ix_runs_state", table_name="runs")


def downgrade() -> None:
    op.create_index("ix_runs_state", "runs", ["state"])
    op.drop_index("ix_runs_state_page", table_name="runs")
