"""follower_cursors: the durable position of each named `inlet follow` follower

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:40:00

In the catalogue because the stream it points into (file_availability ids) is there: one
database, one backup, and the position and the rows it counts cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from rucio_inlet.catalog_models import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "follower_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("selection", sa.Text(), nullable=False),
        sa.Column("rse", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("follower_cursors")
