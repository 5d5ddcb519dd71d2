"""``inlet runs``: runs in the catalogue with their life-cycle state and where their files are."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rucio_inlet.catalog_states import parse_state

from inlet.catalog.db import open_catalog
from inlet.catalog.listing import list_runs
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


#: Runs per page of ``inlet runs`` unless --limit says otherwise.
PAGE = 50


def parse_after(text: str) -> tuple[str, int]:
    """``EXPERIMENT/RUN``, the last run of the previous page (as ``inlet runs`` prints it)."""
    experiment, _, number = text.strip().rpartition("/")
    if not experiment or not number.isascii() or not number.isdigit() or len(number) > 18:
        raise ValueError(f"--after {text!r}: give the last run of the previous page as EXPERIMENT/RUN, e.g. kloe/5000")
    return experiment, int(number)


def runs(
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state, e.g. ON_S3.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs started since: 2d, 12h, 30m or an ISO date.")
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only this experiment.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Runs per page; 0 lists every run (slow on a big catalogue).")
    ] = PAGE,
    after: Annotated[
        str | None,
        typer.Option("--after", help="The next page: runs after this EXPERIMENT/RUN (the last one shown)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show runs with their life-cycle state and, per RSE, how many of their files are there.

    One page at a time, in (experiment, run number) order; the last line says how to get the
    next page. With --json, the same page as a list (take the last run for --after).
    """
    try:
        since_t = parse_since(since) if since else None
        if state:
            parse_state(state)
        after_key = parse_after(after) if after else None
    except ValueError as err:
        raise InletError(str(err), "see `inlet runs -h`") from err
    catalog = open_catalog(load_settings().catalog_url())
    with catalog.session() as session:
        rows = list_runs(session, state, since_t, experiment, limit=limit or None, after=after_key)
    catalog.dispose()
    if as_json:
        echo_json(rows)
        return
    more = bool(limit) and len(rows) == limit
    table = Table(title=f"{len(rows)} run(s)" + (" (first page)" if more and not after else ""))
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
    if more:
        last = f"{rows[-1]['experiment']}/{rows[-1]['run_number']}"
        console.print(f"more runs may follow; the next page: [bold]inlet runs --after {escape(last)}[/] (same filters)")
