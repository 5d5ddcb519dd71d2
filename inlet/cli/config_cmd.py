"""``inlet config``: show the effective configuration and its reference."""

from __future__ import annotations

import json

import typer

from inlet.cli.output import JsonAlways
from inlet.config import load_settings, mask_secrets, reference_markdown

app = typer.Typer(help="Inspect inlet's configuration (TOML file plus INLET_* overrides).", no_args_is_help=True)


@app.command()
def show(as_json: JsonAlways = True) -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    # Passwords inside URLs and webhook tokens too: this output ends up in tickets and chats.
    typer.echo(json.dumps(mask_secrets(load_settings().model_dump(mode="json")), indent=2))


@app.command()
def doc() -> None:
    """Print the configuration reference (Markdown table of every key, its env override and default)."""
    typer.echo(reference_markdown())
