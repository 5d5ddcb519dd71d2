"""Prometheus metrics of the web server (``[web] metrics_port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
