"""``inlet runs``: runs in the catalogue with their life-cycle state and where their files are."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from inlet.catalog.db import open_catalog
from inlet.catalog.listing import list_runs
from inlet.catalog.states import parse_state
from inlet.cli.output import JsonFlag, echo_json
from inlet.config import load_settings
from inlet.errors import InletError

console = Console(stderr=True, soft_wrap=True)
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``2d``, ``12h``, ``30m`` ago, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    m = _RELATIVE.match(text.strip())
    if m:
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give a duration like 2d, 12h, 30m, or an ISO date like 2026-11-01T00:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def runs(
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state, e.g. ON_S3.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs started since: 2d, 12h, 30m or an ISO date.")
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only this experiment.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show runs with their life-cycle state and, per RSE, how many of their files are there."""
    try:
        since_t = parse_since(since) if since else None
        if state:
            parse_state(state)
    except ValueError as err:
        raise InletError(str(err), "see `inlet runs -h`") from err
    catalog = open_catalog(load_settings().catalog_url())
    with catalog.session() as session:
        rows = list_runs(session, state, since_t, experiment)
    catalog.dispose()
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} run(s)")
    for col in ("experiment", "run", "type", "state", "since", "files", "bytes", "files on RSEs"):
        table.add_column(col)
    for r in rows:
        tiers = ", ".join(f"{rse} {n}/{r['files']}" for rse, n in sorted(r["files_on"].items())) or "-"
        table.add_row(
            escape(r["experiment"]),
            str(r["run_number"]),
            escape(r["run_type"]),
            r["state"],
            r["state_changed_at"][:19],
            str(r["files"]),
            str(r["bytes"]),
            escape(tiers),
        )
    Console().print(table)
