"""The run catalogue: runs, their files and where each file is, in SQL (MariaDB or SQLite).

Rucio knows DIDs and replicas; the catalogue knows what a *run* is (type, conditions,
embargo) and how far its data has travelled. It is the shared state of the uploader, the
listener and ``inlet select``, and it is what the Rucio metadata plugin
``rucio_inlet.runmeta`` shows to Rucio users.

This package must stay importable inside the Rucio server: it imports SQLAlchemy and
Alembic only, never inlet.config, inlet.cli or inlet.lake.
"""

from rucio_inlet.catalog_models import (
    FileAvailability,
    OutboxMessage,
    ProcessedEvent,
    Run,
    RunFile,
    RunTransition,
)
from rucio_inlet.catalog_states import IllegalTransition, RunState

from inlet.catalog.db import Catalog, open_catalog, upgrade

__all__ = [
    "Catalog",
    "FileAvailability",
    "IllegalTransition",
    "OutboxMessage",
    "ProcessedEvent",
    "Run",
    "RunFile",
    "RunState",
    "RunTransition",
    "open_catalog",
    "upgrade",
]
