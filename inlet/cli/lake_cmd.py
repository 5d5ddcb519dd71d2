"""``inlet lake up | down | status | env``: the real local data lake."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from inlet.cli.output import JsonFlag, echo_json
from inlet.config import load_settings, mask_text, secret_values
from inlet.lake.errors import LakeError
from inlet.lake.lake import Lake, ServiceStatus

app = typer.Typer(
    help="A real Rucio data lake on 127.0.0.1: PostgreSQL, Rucio server and daemons, ActiveMQ, "
    "S3, Redis. State lives in \\[lake] state_dir (default ./.lake).",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _lake() -> Lake:
    return Lake(load_settings())


def _masked(text: str) -> str:
    """Service output shown on a terminal (log tails, a child's last words) without secrets."""
    return mask_text(text, secret_values(load_settings()))


def _fail(err: LakeError) -> LakeError:
    """The same error, its problem masked (it may quote a service's last log lines), for the CLI's
    one handler, which prints it as one line."""
    return LakeError(_masked(err.problem), err.fix)


def _table(rows: list[ServiceStatus]) -> Table:
    table = Table(title="inlet lake")
    for col in ("service", "state", "pid", "endpoint", "RSS MB", "log"):
        table.add_column(col)
    degraded = any(r.state == "degraded" for r in rows)
    if degraded:
        table.add_column("last error")
    colour = {"up": "green", "external": "cyan", "starting": "yellow", "degraded": "magenta"}
    for r in rows:
        c = colour.get(r.state, "red")
        cells = [r.name, f"[{c}]{r.state}[/]", str(r.pid or "-"), r.endpoint, f"{r.rss / 2**20:.0f}", r.log_path]
        table.add_row(*cells, *([escape(_masked(r.last_error))] if degraded else []))
    return table


def _as_dict(r: ServiceStatus) -> dict[str, object]:
    """One service's status for --json, its log lines and last error masked like the table's."""
    return {
        "service": r.name,
        "state": r.state,
        "ok": r.ok,
        "pid": r.pid,
        "endpoint": r.endpoint,
        "rss_bytes": r.rss,
        "log": r.log_path,
        "last_error": _masked(r.last_error),
        "log_tail": _masked(r.log_tail),
    }


@app.command()
def up() -> None:
    """Start every managed service (idempotent: running services are left alone) and report health.

    First start initialises PostgreSQL, bootstraps the Rucio catalogue (schema, root account,
    userpass identity) and creates the RSEs SITE_A_DISK, S3, TAPE and SITE_B_DISK.
    """
    lake = _lake()
    t0 = time.monotonic()
    try:
        with console.status("starting the lake") as spinner:

            def progress(name: str, msg: str) -> None:
                spinner.update(f"{name}: {msg}")
                console.log(escape(f"{name}: {msg}"))

            rows = lake.up(progress)
    except LakeError as err:
        raise _fail(err) from err
    console.print(_table(rows))
    console.print(f'lake up in {time.monotonic() - t0:.1f} s. Use it from a shell: eval "$(inlet lake env)"')
    if not all(r.ok for r in rows):
        raise typer.Exit(code=1)


@app.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the state directory (all lake data).")] = False,
) -> None:
    """Stop the services this lake started, by their recorded pid (never anything else)."""
    lake = _lake()
    try:
        lake.down(purge=purge, progress=lambda n, m: console.log(f"{n}: {m}"))
    except LakeError as err:
        raise _fail(err) from err


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Show each service: state, pid, endpoint, memory; and the log tail of any that failed.

    A daemon that runs but keeps failing its passes (tracebacks in its recent log) is `degraded`.
    Exit code 0 if all are up, 1 otherwise (handy in scripts: `inlet lake status || inlet lake up`).
    """
    rows = _lake().status()
    code = 0 if all(r.ok for r in rows) else 1
    if as_json:
        echo_json([_as_dict(r) for r in rows])
        raise typer.Exit(code=code)
    console.print(_table(rows))
    for r in rows:
        if r.state == "degraded":
            console.print(
                f"[magenta]{r.name} is degraded[/]: its passes keep failing; last error: {escape(r.last_error)}"
            )
        if r.log_tail:
            console.print(
                f"[red]{r.name} is {r.state}[/]; last lines of {escape(r.log_path)}:\n{escape(_masked(r.log_tail))}"
            )
    raise typer.Exit(code=code)


@app.command()
def env(as_json: JsonFlag = False) -> None:
    """Print shell exports so that the plain `rucio` CLI talks to this lake: eval "$(inlet lake env)"."""
    exports = _lake().exports()
    if as_json:
        echo_json(exports)
        return
    for key, value in exports.items():
        typer.echo(f"export {key}={value}")
