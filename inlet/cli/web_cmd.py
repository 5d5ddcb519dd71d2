"""``inlet web``: the status pages for shift workers (runs, uploader, listener, alarms, rehearsals)."""

from __future__ import annotations

from typing import Annotated

import typer

from inlet.config import load_settings


def web(
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default \\[web] host: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default \\[web] port).", min=1, max=65535)] = None,
) -> None:
    """Serve the status pages; log in with a Rucio account (data managers may also act).

    Live updates come from the broker over SSE. Roles come from Rucio account attributes:
    \\[web] data_manager_attribute (default data-manager; root always) may act,
    \\[web] collaboration_attribute (default collaboration) sees embargoed runs; other accounts
    see public runs and counts only.
    """
    from inlet.web.server import serve

    settings = load_settings()
    if host is not None:
        settings.web.host = host
    if port is not None:
        settings.web.port = port
    serve(settings)
