"""``inlet embargo release``: publish proprietary data whose embargo has passed.

The Rucio server (policy package ``rucio_inlet``) refuses rules to public RSEs for DIDs
whose ``embargo_until`` is in the future; this command finds the DIDs whose date has passed and
adds their public rule, so that a cron job can run it daily.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from inlet.cli.output import JsonFlag, echo_json
from inlet.config import load_settings

app = typer.Typer(help="Proprietary data under embargo (DID metadata embargo_until).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.callback()
def _embargo() -> None:
    """Proprietary data under embargo (DID metadata embargo_until)."""


@app.command()
def release(
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            "-s",
            help="Scope to search (repeatable). Default: config embargo.scopes, else every experiment scope.",
        ),
    ] = None,
    rse_expression: Annotated[
        str | None,
        typer.Option(
            "--rse-expression", "-r", help="Where the public copy goes. Default: config embargo.public_rse_expression."
        ),
    ] = None,
    copies: Annotated[int | None, typer.Option(help="Copies of the public rule. Default: embargo.copies.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the DIDs that are due; add no rule.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the DIDs whose embargo has passed and add their public rules (existing ones are kept)."""
    settings = load_settings()
    scopes = scope or settings.embargo.scopes or settings.naming.scopes()
    expression = rse_expression or settings.embargo.public_rse_expression
    if "RUCIO_CONFIG" not in os.environ:
        # Rucio reads its configuration once, at import: point it at the lake's before importing.
        from inlet.lake.lake import Lake

        os.environ.update(Lake(settings).rucio_client_env())
    from rucio.client import Client

    from inlet.policies.embargo_release import release as do_release

    # Rucio's errors (unreachable, refused credentials, unknown scope) are explained in one line
    # by the CLI's one handler.
    results = do_release(Client(), scopes, expression, copies or settings.embargo.copies, dry_run=dry_run)
    failed = any(r.action == "failed" for r in results)
    if as_json:
        echo_json([{"did": r.did, **vars(r)} for r in results])
        raise typer.Exit(1 if failed else 0)
    table = Table(title=f"embargo release to {expression}")
    for col in ("DID", "embargo_until", "action", "rule"):
        table.add_column(col)
    for r in results:
        table.add_row(r.did, r.embargo_until, r.action, r.rule_id or escape(r.error))
    console.print(table)
    console.print(f"{len(results)} DID(s) past their embargo in {', '.join(scopes)}")
    if failed:
        errors.print("[yellow]fix:[/] see the errors above (quota, RSE expression); re-running is safe")
        raise typer.Exit(1)
