"""``inlet listen``: run a listener (as many instances as you like), or ``--status`` of one."""

from __future__ import annotations

import logging
from typing import Annotated

import requests
import typer
from rich.console import Console
from rich.markup import escape

from inlet.config import load_settings, metrics_url
from inlet.errors import InletError

console = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("inlet.listener")


def listen(
    status: Annotated[
        bool, typer.Option("--status", help="Print the metrics of the listener on \\[listener] metrics_port and exit.")
    ] = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", help="Stop after handling this many events (benchmarks, tests).")
    ] = None,
) -> None:
    """Consume Rucio's and inlet's events durably and apply their effects exactly once.

    Start several instances to share the load: the broker gives each event to one of them.
    SIGTERM finishes the batch in hand and hands the rest back to the broker.
    """
    settings = load_settings()
    if status:
        raise typer.Exit(code=_status(settings.listener.metrics_port, settings))

    from inlet.catalog.db import open_catalog
    from inlet.listener.routing import Router
    from inlet.listener.rucio_lookup import RucioClientLookup
    from inlet.listener.service import Listener

    # A RoutingError or a CatalogError is printed by the CLI's one handler.
    router = Router.from_settings(settings.listener)
    catalog = open_catalog(settings.catalog_url())
    if settings.listener.metrics_port:
        from prometheus_client import REGISTRY, start_http_server

        from inlet.broker_stats import QueueDepthCollector

        # Queue depth per broker destination, asked of the broker at each scrape.
        REGISTRY.register(QueueDepthCollector(settings.broker))
        try:
            start_http_server(settings.listener.metrics_port, addr=settings.listener.metrics_host)
        except OSError as err:
            catalog.dispose()
            raise InletError(
                f"metrics port {settings.listener.metrics_port} is taken ({err})",
                "set another [listener] metrics_port / INLET_LISTENER__METRICS_PORT, or 0 for none",
            ) from err
    listener = Listener(settings, catalog, router, RucioClientLookup())
    listener.install_signal_handlers()
    log.info(
        "listener %s starting on %s and %s",
        settings.listener.consumer,
        settings.listener.rucio_queue,
        settings.listener.inlet_queue,
    )

    try:
        # BrokerUnavailable (no broker, or a wrong password) reaches the CLI's one handler.
        handled = listener.run(max_events=max_events)
    finally:
        catalog.dispose()
    log.info("listener stopped after %d events", handled)


def _status(port: int, settings: object) -> int:
    from inlet.config import Settings
    from inlet.listener.dlq import DeadLetterQueue
    from inlet.messaging import BrokerUnavailable

    assert isinstance(settings, Settings)
    code = 0
    if not port:
        console.print("[yellow]no \\[listener] metrics_port set: listener metrics are off[/]")
        code = 1
    else:
        url = metrics_url(settings.listener.metrics_host, port)
        try:
            text = requests.get(url, timeout=5).text
        except requests.RequestException as err:
            console.print(f"[bold red]no listener answers on {url}:[/] {escape(str(err))}")
            code = 1
        else:
            for line in text.splitlines():
                if line.startswith("inlet_listener_") and not line.startswith("#") and "_bucket" not in line:
                    typer.echo(line)
    try:
        size = len(DeadLetterQueue(settings.broker, settings.listener).letters())
        typer.echo(f"dlq {settings.listener.dlq}: {size} message(s)")
    except BrokerUnavailable as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}")
        code = 1
    return code
