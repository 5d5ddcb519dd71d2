"""Runs as people look at them: ``inlet runs`` and the web status page read the same rows.

One page of runs costs two queries whatever the catalogue's size: the page itself (served by
the ``(experiment, run_number)`` unique index in either order) and the per-RSE file counts of
just that page's runs. ``public_at`` hides runs under embargo at that instant, in SQL, so a
page for someone outside the collaboration never carries an embargoed run's name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile
from rucio_inlet.catalog_states import parse_state
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session


def run_row(r: Run, on: dict[str, int]) -> dict[str, Any]:
    return {
        "experiment": r.experiment,
        "run_number": r.run_number,
        "run_type": r.run_type,
        "state": r.state.value,
        "state_changed_at": r.state_changed_at.isoformat(),
        "start": r.start_time.isoformat() if r.start_time else None,
        "files": r.n_files,
        "bytes": r.total_bytes,
        "dataset": f"{r.scope}:{r.dataset}" if r.dataset else None,
        "embargo_until": r.embargo_until.isoformat() if r.embargo_until else None,
        "files_on": on,
    }


def visible_clause(public_at: dt.datetime) -> Any:
    """Runs whose catalogue embargo has ended at ``public_at`` (or that never had one)."""
    return or_(Run.embargo_until.is_(None), Run.embargo_until <= public_at)


def list_runs(
    session: Session,
    state: str | None = None,
    since: dt.datetime | None = None,
    experiment: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    after: tuple[str, int] | None = None,
    newest_first: bool = False,
    public_at: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Runs (a page of them with ``limit``) with, per RSE, how many of their files are there.

    ``after`` is the last (experiment, run_number) of the previous page (keyset pagination):
    a page is then a range read on the index however deep it is, where ``offset`` reads and
    skips every run before it.
    """
    order = (Run.experiment.desc(), Run.run_number.desc()) if newest_first else (Run.experiment, Run.run_number)
    stmt = select(Run).order_by(*order)
    if after:
        # The OR form, not a row comparison: MariaDB turns this into a range on the index.
        exp, num = after
        if newest_first:
            stmt = stmt.where(or_(Run.experiment < exp, and_(Run.experiment == exp, Run.run_number < num)))
        else:
            stmt = stmt.where(or_(Run.experiment > exp, and_(Run.experiment == exp, Run.run_number > num)))
    if state:
        stmt = stmt.where(Run.state == parse_state(state))
    if since:
        stmt = stmt.where(func.coalesce(Run.start_time, Run.created_at) >= since)
    if experiment:
        stmt = stmt.where(Run.experiment == experiment)
    if public_at is not None:
        stmt = stmt.where(visible_clause(public_at))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    runs = session.scalars(stmt).all()
    on: dict[int, dict[str, int]] = {}
    if runs:
        counts = session.execute(
            select(RunFile.run_id, FileAvailability.rse, func.count())
            .join(FileAvailability, FileAvailability.file_id == RunFile.id)
            .where(RunFile.run_id.in_([r.id for r in runs]))
            .group_by(RunFile.run_id, FileAvailability.rse)
        ).all()
        for run_id, rse, n in counts:
            on.setdefault(run_id, {})[rse] = int(n)
    return [run_row(r, on.get(r.id, {})) for r in runs]
