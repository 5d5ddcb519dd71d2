"""``inlet catalog upgrade | revision``: the run catalogue's schema."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.pool import NullPool

from inlet.catalog.db import CatalogError, current_revision, head_revision, make_engine, upgrade
from inlet.config import load_settings

app = typer.Typer(
    help="The run catalogue (runs, files, per-RSE availability) in [catalog] url: SQLite by default, "
    "MariaDB in production.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def catalog_url() -> str:
    return load_settings().catalog_url()


@app.command("upgrade")
def upgrade_cmd() -> None:
    """Create or migrate the catalogue schema to the newest revision (safe to repeat)."""
    url = catalog_url()
    try:
        upgrade(url)
    except CatalogError as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}")
        raise typer.Exit(code=2) from err
    engine = make_engine(url, poolclass=NullPool)
    console.print(
        f"catalogue {escape(engine.url.render_as_string(hide_password=True))} at revision {current_revision(engine)}"
    )
    engine.dispose()


@app.command("revision")
def revision_cmd() -> None:
    """Print the schema revision of the catalogue and the newest one this inlet knows."""
    engine = make_engine(catalog_url(), poolclass=NullPool)
    try:
        current = current_revision(engine)
    except Exception as err:
        console.print(f"[bold red]error:[/] cannot read the catalogue: {escape(str(err))}")
        raise typer.Exit(code=2) from err
    finally:
        engine.dispose()
    head = head_revision()
    typer.echo(f"current: {current or 'none (run `inlet catalog upgrade`)'}\nhead: {head}")
    raise typer.Exit(code=0 if current == head else 1)
