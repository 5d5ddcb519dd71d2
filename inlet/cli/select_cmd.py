"""``inlet select EXPR``: files by meaning, from the run catalogue (grammar: inlet.select)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from inlet.catalog.db import open_catalog
from inlet.config import load_settings
from inlet.select.grammar import parse_selection
from inlet.select.resolve import SelectedFile, select_files

console = Console(stderr=True, soft_wrap=True)

HELP = """Resolve a selection to file DIDs and their replicas, from the run catalogue.

EXPR is `[tier:] condition`, e.g.

  inlet select "raw:(run_number=5000) and (stream='ksl')"

  inlet select "cygno.raw: run between 5000 and 5100 and run_type in (physics, cosmics)"

  inlet select "*: rse = TAPE and not rse = SITE_A_DISK"

The tier is a Rucio scope or its last part (raw = every *.raw scope); `*` is every scope.
Conditions combine comparisons (= != < <= > >=, in (...), between A and B) with and/or/not
and parentheses, over run keys (experiment, run_number/run_nr/run, run_type, run_state,
run_start, run_stop, run_embargo_until), file keys (name, size, adler32, md5, closed_at,
uploaded_at, registered_at), rse, and any key of the runs' conditions (stream, beam...).
Quote text with ' or "; a * inside quotes is a wildcard; dates are ISO 8601.
"""


def _table(files: list[SelectedFile]) -> Table:
    table = Table(title=f"{len(files)} file(s)")
    for col in ("DID", "run", "state", "bytes", "adler32", "replicas (catalogue)"):
        table.add_column(col)
    for f in files:
        table.add_row(
            escape(f.did),
            f"{escape(f.experiment)}/{f.run_number}",
            f.run_state,
            str(f.size),
            f.adler32 or "-",
            ", ".join(sorted(f.replicas)) or "-",
        )
    return table


def select(
    expr: Annotated[str, typer.Argument(help="The selection, e.g. \"raw:(run_number=5000) and (stream='ksl')\".")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object per file) instead of a table.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many files.")] = None,
) -> None:
    # A bad selection, or a catalogue that cannot be opened, is an InletError: the CLI's one
    # handler prints it as one line and exits 2.
    parse_selection(expr)
    catalog = open_catalog(load_settings().catalog_url())
    try:
        with catalog.session() as session:
            files = select_files(session, expr, limit=limit)
    finally:
        catalog.dispose()
    if as_json:
        typer.echo(json.dumps([f.as_dict() for f in files], indent=2))
    else:
        Console().print(_table(files))


select.__doc__ = HELP


def _rucio_env() -> None:
    """Point Rucio's client at the configured Rucio before it is imported (it reads the config once)."""
    import os

    if "RUCIO_CONFIG" in os.environ:
        return
    from inlet.lake.lake import Lake

    os.environ.update(Lake(load_settings()).rucio_client_env())


def fetch(
    expr: Annotated[str, typer.Argument(help="The selection (see `inlet select --help`).")],
    to: Annotated[
        str, typer.Option("--to", help="Destination directory (files land in DIR/<scope>/<name>); created if missing.")
    ],
    recall_to: Annotated[
        str, typer.Option("--recall-to", help="RSE expression of the disk cache for tape recalls.")
    ] = "rse_type=DISK",
    lifetime: Annotated[int, typer.Option("--lifetime", min=60, help="Lifetime (s) of recall rules.")] = 7 * 86400,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Parallel downloads.")] = 4,
    recall_timeout: Annotated[
        float, typer.Option("--recall-timeout", help="Seconds to wait for tape recalls before giving up.")
    ] = 3600.0,
) -> None:
    """Make the selected files available and download them in parallel, verifying checksums.

    Files only on TAPE are first recalled to a disk RSE by rules with a lifetime, one rule
    request per run dataset so that a tape is mounted once per group. Resumable: files already
    in --to with the catalogue's adler32 are skipped, and recall rules are reused.
    """
    from inlet.select.fetch import check_destination

    # Both checked before the catalogue or Rucio is touched: a typo costs nothing.
    parse_selection(expr)
    dest = check_destination(to)
    catalog = open_catalog(load_settings().catalog_url())
    try:
        with catalog.session() as session:
            files = select_files(session, expr)
    finally:
        catalog.dispose()
    if not files:
        console.print("nothing selected")
        return
    _rucio_env()
    from inlet.select.fetch import Fetcher

    fetcher = Fetcher(dest, recall_to=recall_to, lifetime=lifetime, workers=workers, recall_timeout=recall_timeout)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = fetcher.run(files, progress)  # a FetchError (exit 1) goes to the CLI's handler
    console.print(
        f"{len(files)} selected: {len(report.skipped)} already present and verified, "
        f"{len(report.downloaded)} downloaded, {len(report.recall_rules)} recall rule(s) in "
        f"{report.recall_groups} group(s), {len(report.failed)} failed"
    )
    for did, why in sorted(report.failed.items()):
        console.print(f"[red]failed[/] {escape(did)}: {escape(why)}")
    if not report.ok:
        raise typer.Exit(code=1)
