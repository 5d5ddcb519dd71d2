"""What every read command shares: a ``--json`` flag and one way to print JSON.

Scripts read state through ``--json`` (as with the ``rucio`` CLI), people through the table or
the lines a command prints otherwise; one definition keeps the flag's name and help the same
everywhere.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

#: The ``--json`` flag of a command that reads state.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

#: The same flag on a command whose only output is JSON already: accepted, so that every read
#: command takes ``--json``.
JsonAlways = Annotated[
    bool, typer.Option("--json", help="Print JSON (this command's only output).", show_default=False)
]


def echo_json(data: Any) -> None:
    """Print DATA as indented JSON on stdout (anything JSON cannot encode as its string)."""
    typer.echo(json.dumps(data, indent=2, default=str))
