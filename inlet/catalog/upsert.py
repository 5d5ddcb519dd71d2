"""INSERT ... that does nothing if the unique key already exists, on every backend.

A plain INSERT that catches the duplicate-key error would abort the surrounding
transaction on some backends and leave a gap on others; the native forms do neither.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Insert, Row, Table, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

#: The statements, built once per (backend, table): building an ``on_conflict_do_nothing``
#: insert costs about a millisecond, as much as executing a small batch with it.
_STATEMENTS: dict[tuple[str, str], Insert] = {}


def _statement(backend: str, table: Table) -> Insert:
    stmt = _STATEMENTS.get((backend, table.name))
    if stmt is None:
        if backend == "sqlite":
            stmt = sqlite.insert(table).on_conflict_do_nothing()
        elif backend in ("mysql", "mariadb"):
            stmt = mysql.insert(table).prefix_with("IGNORE")
        elif backend == "postgresql":
            stmt = postgresql.insert(table).on_conflict_do_nothing()
        else:
            stmt = insert(table)
        _STATEMENTS[(backend, table.name)] = stmt
    return stmt


def insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping those whose unique key exists; returns how many were new."""
    if not rows:
        return 0
    result = session.execute(_statement(session.get_bind().dialect.name, table), rows)
    return int(getattr(result, "rowcount", 0) or 0)


def insert_ignore_returning(
    session: Session, table: Table, rows: list[dict[str, Any]], returning: list[Column[Any]]
) -> list[Row[Any]]:
    """Insert ``rows`` as :func:`insert_ignore` does; ``returning`` of the rows that were new.

    One statement instead of an INSERT then a SELECT for the new rows' ids. The backends
    the catalogue runs on (SQLite >= 3.35, MariaDB >= 10.5, PostgreSQL) return only the
    rows they inserted, so a row missing from the answer is one that already existed.
    """
    if not rows:
        return []
    stmt = _statement(session.get_bind().dialect.name, table).returning(*returning)
    return list(session.execute(stmt, rows))
