"""Alembic environment of the run catalogue (runs inside inlet, never via alembic.ini)."""

from __future__ import annotations

from alembic import context
from rucio_inlet.catalog_models import Base
from sqlalchemy import engine_from_config, pool

from inlet.catalog.db import VERSION_TABLE

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=VERSION_TABLE,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            version_table=VERSION_TABLE,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("the run catalogue migrates online only: use `inlet catalog upgrade`")
run_migrations()
