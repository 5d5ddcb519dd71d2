"""Conditions over the catalogue, compiled to SQL: shared by ``inlet select`` and the Rucio
metadata plugin, so that a key means the same thing in both.

A condition is a tree of :class:`Cmp` (key, operator, value) under :class:`And`, :class:`Or`
and :class:`Not`. Keys resolve, in this order, to:

- run columns: ``experiment``, ``run_number`` (aliases ``run_nr``, ``run``), ``run_type``,
  ``run_state`` (alias ``state``), ``run_start``/``run_stop`` (aliases ``start``/``stop``),
  ``run_embargo_until``;
- file columns (file level only): ``scope``, ``name``, ``size`` (alias ``bytes``), ``adler32``,
  ``md5``, ``closed_at``, ``uploaded_at``, ``registered_at``;
- ``rse``: the file is available on that RSE (``=`` and ``!=`` only);
- anything else: a key of the run's free-form ``conditions`` (e.g. ``stream``, ``beam``).

A string value with ``*`` is a wildcard (``=`` and ``!=`` only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, Union

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile
from rucio_inlet.catalog_states import parse_state

Op = Literal["=", "!=", "<", "<=", ">", ">="]
OPS: tuple[Op, ...] = ("=", "!=", "<", "<=", ">", ">=")
Value = Union[str, int, float, bool, dt.datetime]
Level = Literal["file", "run"]


class QueryError(ValueError):
    """A condition the catalogue cannot evaluate; the message says why and what to write."""

    #: Where the offending comparison starts in the user's text.
    pos: int = 0


@dataclass(frozen=True)
class Cmp:
    key: str
    op: Op
    value: Value
    pos: int = 0  # where the key starts in the user's text (for error messages)


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Union[Cmp, And, Or, Not]

RUN_KEYS: dict[str, InstrumentedAttribute[Any]] = {
    "experiment": Run.experiment,
    "run_number": Run.run_number,
    "run_nr": Run.run_number,
    "run": Run.run_number,
    "run_type": Run.run_type,
    "run_state": Run.state,
    "state": Run.state,
    "run_start": Run.start_time,
    "start": Run.start_time,
    "run_stop": Run.stop_time,
    "stop": Run.stop_time,
    "run_embargo_until": Run.embargo_until,
}
FILE_KEYS: dict[str, InstrumentedAttribute[Any]] = {
    "scope": RunFile.scope,
    "name": RunFile.name,
    "size": RunFile.size,
    "bytes": RunFile.size,
    "adler32": RunFile.adler32,
    "md5": RunFile.md5,
    "closed_at": RunFile.closed_at,
    "uploaded_at": RunFile.uploaded_at,
    "registered_at": RunFile.registered_at,
}
#: At run level (Rucio datasets) the DID is the run's dataset.
RUN_LEVEL_DID_KEYS: dict[str, InstrumentedAttribute[Any]] = {"scope": Run.scope, "name": Run.dataset}
_TIME_COLUMNS = {
    "run_start",
    "start",
    "run_stop",
    "stop",
    "run_embargo_until",
    "closed_at",
    "uploaded_at",
    "registered_at",
}
_INT_COLUMNS = {"run_number", "run_nr", "run", "size", "bytes"}


def _compare(column: Any, op: Op, value: Any) -> ColumnElement[bool]:
    if isinstance(value, str) and "*" in value:
        if op not in ("=", "!="):
            raise QueryError(f"wildcard {value!r} needs = or !=, not {op}")
        pattern = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
        like: ColumnElement[bool] = column.like(pattern, escape="\\")
        return like if op == "=" else not_(like)
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    raise QueryError(f"unknown operator {op!r}; use one of {', '.join(OPS)}")


def parse_time(key: str, value: Value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    raise QueryError(f"{key}: {value!r} is not a date/time; write it as ISO 8601, e.g. '2026-11-01T12:00:00'")


def _column_value(key: str, value: Value) -> Value:
    if key in _TIME_COLUMNS:
        return parse_time(key, value)
    if key in _INT_COLUMNS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise QueryError(f"{key} is a whole number; {value!r} is not")
        return int(value)
    if key in ("run_state", "state"):
        try:
            return parse_state(str(value)).value
        except ValueError as exc:
            raise QueryError(str(exc)) from None
    return value


def compile_cmp(c: Cmp, level: Level = "file") -> ColumnElement[bool]:
    key = c.key
    if level == "run" and key in RUN_LEVEL_DID_KEYS:
        return _compare(RUN_LEVEL_DID_KEYS[key], c.op, c.value)
    if key in RUN_KEYS:
        return _compare(RUN_KEYS[key], c.op, _column_value(key, c.value))
    if key in FILE_KEYS:
        if level == "run":
            raise QueryError(f"{key} is a file property; it cannot select runs/datasets (list files instead)")
        return _compare(FILE_KEYS[key], c.op, _column_value(key, c.value))
    if key == "rse":
        if c.op not in ("=", "!="):
            raise QueryError(f"rse takes = or != (is the file on that RSE?), not {c.op}")
        on = exists(
            select(FileAvailability.id).where(
                FileAvailability.file_id == RunFile.id, FileAvailability.rse == str(c.value)
            )
        )
        if level == "run":
            raise QueryError("rse is a file property; it cannot select runs/datasets (list files instead)")
        return on if c.op == "=" else not_(on)
    # A run condition from the free-form JSON.
    element = Run.conditions[key]
    value = c.value
    if isinstance(value, bool):
        return _compare(element.as_boolean(), c.op, value)
    if isinstance(value, (int, float)):
        return _compare(element.as_float(), c.op, float(value))
    if isinstance(value, dt.datetime):
        return _compare(element.as_string(), c.op, value.isoformat())
    return _compare(element.as_string(), c.op, value)


def compile_node(node: Node, level: Level = "file") -> ColumnElement[bool]:
    if isinstance(node, Cmp):
        try:
            return compile_cmp(node, level)
        except QueryError as exc:
            exc.pos = node.pos
            raise
    if isinstance(node, And):
        return and_(true(), *(compile_node(n, level) for n in node.items))
    if isinstance(node, Or):
        return or_(false(), *(compile_node(n, level) for n in node.items))
    return not_(compile_node(node.item, level))


def keys_of(node: Node) -> set[str]:
    if isinstance(node, Cmp):
        return {node.key}
    if isinstance(node, Not):
        return keys_of(node.item)
    return set().union(*(keys_of(n) for n in node.items))
