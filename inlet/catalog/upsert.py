"""INSERT ... that does nothing if the unique key already exists, on every backend.

A plain INSERT that catches the duplicate-key error would abort the surrounding
transaction on some backends and leave a gap on others; the native forms do neither.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Table, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping those whose unique key exists; returns how many were new."""
    if not rows:
        return 0
    name = session.get_bind().dialect.name
    stmt: Insert
    if name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif name in ("mysql", "mariadb"):
        stmt = mysql.insert(table).prefix_with("IGNORE")
    elif name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = insert(table)
    result = session.execute(stmt, rows)
    return int(getattr(result, "rowcount", 0) or 0)
