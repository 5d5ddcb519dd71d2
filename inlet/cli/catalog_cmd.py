"""``inlet catalog upgrade | revision``: the run catalogue's schema; ``inlet reconcile``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from inlet.catalog.db import CatalogError, current_revision, head_revision, make_engine, upgrade
from inlet.cli.output import JsonFlag, echo_json
from inlet.config import load_settings

app = typer.Typer(
    help="The run catalogue (runs, files, per-RSE availability) in \\[catalog] url: SQLite by default, "
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
    upgrade(url)  # a CatalogError is printed by the CLI's one handler
    engine = make_engine(url, poolclass=NullPool)
    console.print(
        f"catalogue {escape(engine.url.render_as_string(hide_password=True))} at revision {current_revision(engine)}"
    )
    engine.dispose()


@app.command("revision")
def revision_cmd(as_json: JsonFlag = False) -> None:
    """Print the schema revision of the catalogue and the newest one this inlet knows."""
    engine = make_engine(catalog_url(), poolclass=NullPool)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as err:
        raise CatalogError(
            f"cannot read the catalogue at {engine.url.render_as_string(hide_password=True)}: "
            f"{getattr(err, 'orig', None) or err}",
            "check [catalog] url / INLET_CATALOG__URL and that the database server is up (`inlet lake status`)",
        ) from err
    finally:
        engine.dispose()
    head = head_revision()
    if as_json:
        echo_json({"current": current, "head": head})
        raise typer.Exit(code=0 if current == head else 1)
    typer.echo(f"current: {current or 'none (run `inlet catalog upgrade`)'}\nhead: {head}")
    raise typer.Exit(code=0 if current == head else 1)


def reconcile(
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only this experiment's runs.")] = None,
    run: Annotated[
        int | None, typer.Option("--run", min=0, help="Only this run (with --experiment if numbers repeat).")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Fix the catalogue side where Rucio is unambiguous.")] = False,
    s3_rse: Annotated[str, typer.Option("--s3-rse", help="The RSE behind the ON_S3 state.")] = "S3",
    tape_rse: Annotated[str, typer.Option("--tape-rse", help="The RSE behind the ON_TAPE state.")] = "TAPE",
    as_json: JsonFlag = False,
) -> None:
    """Compare the run catalogue with Rucio (DIDs, checksums, replicas, rule states, run states).

    Every mismatch is reported with its fix; --apply fixes the catalogue side (Rucio is never
    changed). Exit code 0 when nothing is left to fix, 1 otherwise.
    """
    from inlet.catalog.db import open_catalog
    from inlet.catalog.runs import NotInCatalog
    from inlet.cli.select_cmd import _rucio_env
    from inlet.errors import InletError

    catalog = open_catalog(catalog_url())
    _rucio_env()
    from inlet.catalog.reconcile import Reconciler

    try:
        found = Reconciler(catalog, s3_rse=s3_rse, tape_rse=tape_rse).run(experiment, apply, run_number=run)
    except NotInCatalog as err:
        raise InletError(str(err), "`inlet runs` lists the catalogue's runs") from err
    finally:
        catalog.dispose()
    if as_json:
        echo_json([m.as_dict() for m in found])
    else:
        table = Table(title=f"{len(found)} mismatch(es)")
        for col in ("kind", "subject", "detail", "fix", "applied"):
            table.add_column(col)
        for m in found:
            table.add_row(m.kind, escape(m.subject), escape(m.detail), escape(m.fix), "yes" if m.applied else "")
        Console().print(table)
    raise typer.Exit(code=0 if all(m.applied for m in found) else 1)
