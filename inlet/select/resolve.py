"""Evaluating a selection against the run catalogue: which files, of which runs, where."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile
from rucio_inlet.catalog_query import QueryError, compile_node
from rucio_inlet.catalog_states import RunState
from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from inlet.select.grammar import Selection, SelectSyntaxError, parse_selection


@dataclass
class SelectedFile:
    scope: str
    name: str
    size: int
    adler32: str | None
    md5: str | None
    experiment: str
    run_number: int
    run_state: str
    dataset: str | None
    #: RSE → when the file became available there (from the catalogue).
    replicas: dict[str, str] = field(default_factory=dict)

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {"did": self.did, **asdict(self)}


def tier_clause(tier: str | None) -> ColumnElement[bool] | None:
    if tier is None:
        return None
    # `raw` matches the scope `raw` and every `<experiment>.raw`.
    return or_(RunFile.scope == tier, RunFile.scope.like(f"%.{tier}"))


def build_statement(sel: Selection, text: str = "", limit: int | None = None) -> Select[Any]:
    """The SQL of a selection: one row per file with its run's columns."""
    stmt = (
        select(
            RunFile.id,
            RunFile.scope,
            RunFile.name,
            RunFile.size,
            RunFile.adler32,
            RunFile.md5,
            Run.experiment,
            Run.run_number,
            Run.state,
            Run.dataset,
        )
        .join(Run, Run.id == RunFile.run_id)
        .order_by(Run.experiment, Run.run_number, RunFile.name)
    )
    tier = tier_clause(sel.tier)
    if tier is not None:
        stmt = stmt.where(tier)
    if sel.condition is not None:
        try:
            stmt = stmt.where(compile_node(sel.condition, "file"))
        except QueryError as exc:
            raise SelectSyntaxError(str(exc), text, exc.pos) from exc
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def select_files(session: Session, selection: Selection | str, limit: int | None = None) -> list[SelectedFile]:
    """The files a selection names, ordered by experiment, run and name.

    Raises :class:`SelectSyntaxError` for text that does not parse, and for keys or values
    that cannot be evaluated (with the column of the offending comparison).
    """
    text = selection if isinstance(selection, str) else ""
    sel = parse_selection(selection) if isinstance(selection, str) else selection
    rows = session.execute(build_statement(sel, text, limit)).all()
    files = [
        SelectedFile(
            scope=r.scope,
            name=r.name,
            size=r.size,
            adler32=r.adler32,
            md5=r.md5,
            experiment=r.experiment,
            run_number=r.run_number,
            run_state=RunState(r.state).value,
            dataset=r.dataset,
        )
        for r in rows
    ]
    by_id = {r.id: f for r, f in zip(rows, files, strict=True)}
    ids = list(by_id)
    # One query per 500 files for every replica time, not one per file.
    for k in range(0, len(ids), 500):
        avail = session.execute(
            select(FileAvailability.file_id, FileAvailability.rse, FileAvailability.available_at).where(
                FileAvailability.file_id.in_(ids[k : k + 500])
            )
        ).all()
        for file_id, rse, at in avail:
            by_id[file_id].replicas[rse] = _iso(at)
    return files


def _iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def group_by_dataset(files: list[SelectedFile]) -> dict[tuple[str, str], list[SelectedFile]]:
    """Files per run dataset (scope, dataset name), e.g. to recall one tape group at a time."""
    groups: dict[tuple[str, str], list[SelectedFile]] = defaultdict(list)
    for f in files:
        groups[(f.scope, f.dataset or f"{f.experiment}.run{f.run_number}")].append(f)
    return dict(groups)
