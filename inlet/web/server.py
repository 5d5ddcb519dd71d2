"""Serving the application: uvicorn on ``[web] host:port`` and, if set, Prometheus metrics."""

from __future__ import annotations

import logging
import socket

from inlet.config import Settings
from inlet.errors import InletError

log = logging.getLogger("inlet.web")


def _check_free(host: str, port: int, what: str, setting: str) -> None:
    """Fail with one line before uvicorn starts if the address cannot be bound (uvicorn only logs it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InletError(
                f"{what} cannot listen on {host}:{port} ({exc.strerror})", f"set another {setting}"
            ) from exc


def serve(settings: Settings) -> None:
    import uvicorn

    from inlet.web.app import create_app

    web = settings.web
    _check_free(web.host, web.port, "inlet web", "[web] port / INLET_WEB__PORT (or host)")
    app = create_app(settings)
    if web.metrics_port:
        from prometheus_client import REGISTRY, start_http_server

        from inlet.web.metrics import CatalogCollector

        _check_free(web.metrics_host, web.metrics_port, "inlet web's metrics", "[web] metrics_port (0: off)")
        REGISTRY.register(CatalogCollector(app.state.web.catalog))
        start_http_server(web.metrics_port, addr=web.metrics_host)
        log.info("web metrics on http://%s:%d/metrics", web.metrics_host, web.metrics_port)
    if not web.secret:
        log.warning("[web] secret is empty: a random key signs sessions, so a restart logs everyone out")
    log.info("inlet web on http://%s:%d/", web.host, web.port)
    uvicorn.run(
        app,
        host=web.host,
        port=web.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
