"""``inlet``: one CLI, with a subcommand per job.

Each subcommand module owns a Typer sub-app; this module only assembles them, so that a new
subcommand is one module plus one ``add_typer`` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inlet import __version__
from inlet.cli import (
    catalog_cmd,
    config_cmd,
    daemon_cmd,
    embargo_cmd,
    events_cmd,
    follow_cmd,
    lake_cmd,
    listen_cmd,
    rehearse_cmd,
    runs_cmd,
    select_cmd,
    smoke_cmd,
    upload_cmd,
    watch_cmd,
    web_cmd,
)
from inlet.cli.failures import InletGroup, quiet_libraries
from inlet.logs import setup_logging

app = typer.Typer(
    name="inlet",
    help="inlet moves detector runs from the DAQ into a Rucio data lake and reacts to what happens "
    'there.\n\nStart with `inlet lake up` (a real local lake on 127.0.0.1), then `eval "$(inlet lake env)"` '
    "so the plain `rucio` CLI talks to it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Every failure, from parsing to a command's last line, is printed as one line (failures.py).
    cls=InletGroup,
    # Inherited by every subcommand's context: `-h` works wherever `--help` does, as in `rucio`.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inlet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="INLET_CONFIG", help="TOML configuration file.", exists=True),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug).")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="INLET_DEBUG", help="Show the traceback of an unexpected error instead of one line."
        ),
    ] = False,
) -> None:
    """Global options shared by every subcommand."""
    if config is not None:
        import os

        os.environ["INLET_CONFIG"] = str(config)
    setup_logging(verbose)
    quiet_libraries(verbose)


app.add_typer(lake_cmd.app, name="lake")
app.add_typer(config_cmd.app, name="config")
app.command("smoke")(smoke_cmd.smoke)
app.command("rehearse")(rehearse_cmd.rehearse)
app.add_typer(catalog_cmd.app, name="catalog")
app.command("select", help=select_cmd.HELP)(select_cmd.select)
app.command("runs")(runs_cmd.runs)
app.command("fetch")(select_cmd.fetch)
app.command("follow", help=follow_cmd.HELP)(follow_cmd.follow)
app.command("reconcile")(catalog_cmd.reconcile)
app.add_typer(daemon_cmd.app, name="daemon")
app.add_typer(embargo_cmd.app, name="embargo")
app.command("listen")(listen_cmd.listen)
app.add_typer(events_cmd.app, name="events")
app.command("upload")(upload_cmd.upload)
app.add_typer(upload_cmd.app, name="uploader")
app.command("watch")(watch_cmd.watch)
app.command("web")(web_cmd.web)
