"""Prometheus metrics of the web server (``[web] metrics_port``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from rucio_inlet.catalog_models import FileAvailability, Run
from rucio_inlet.catalog_states import RunState
from sqlalchemy import func, select

from inlet.catalog.db import Catalog

REQUESTS = Counter("inlet_web_requests", "Pages and actions served", ["page", "status"])
SECONDS = Histogram(
    "inlet_web_request_seconds",
    "Time to build and send one page",
    ["page"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
)
LOGINS = Counter("inlet_web_logins", "Login attempts", ["outcome"])
ACTIONS = Counter("inlet_web_actions", "Data-manager actions", ["action", "outcome"])
SSE_CLIENTS = Gauge("inlet_web_sse_clients", "Browsers holding a live-update stream")
BROKER_EVENTS = Counter("inlet_web_broker_events", "Broker messages that woke the live-update feed")
CHANGES = Counter("inlet_web_changes", "Catalogue changes pushed to browsers")
FOLLOWERS = Gauge("inlet_web_followers", "Clients holding a /follow file stream")
FOLLOW_FILES = Counter("inlet_web_follow_files", "File events sent to /follow clients")


class CatalogCollector:
    """Runs per state and files per RSE, counted in the run catalogue at each scrape.

    Exact (the catalogue is the record), and cheap: both counts are served by an index
    (``ix_runs_state``, ``ix_file_availability_rse``). ``rate()`` of the per-RSE count is the
    replication rate to that RSE.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        runs = GaugeMetricFamily("inlet_catalog_runs", "Runs in the catalogue per life-cycle state", labels=["state"])
        files = GaugeMetricFamily(
            "inlet_catalog_files_available", "Run files the catalogue knows to be available on an RSE", labels=["rse"]
        )
        try:
            with self.catalog.session() as s:
                by_state = {str(st): int(n) for st, n in s.execute(select(Run.state, func.count()).group_by(Run.state))}
                by_rse = s.execute(select(FileAvailability.rse, func.count()).group_by(FileAvailability.rse)).all()
        except Exception:  # a scrape must not fail because the database blinked: no samples this time
            return
        for state in RunState:
            runs.add_metric([state.value], by_state.get(state.value, 0))
        for rse, n in by_rse:
            files.add_metric([str(rse)], int(n))
        yield runs
        yield files
