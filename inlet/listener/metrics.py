"""Prometheus metrics of the listener (``[listener] metrics_port``; ``inlet listen --status`` reads them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("inlet_listener_events", "Events taken from the broker", ["event_type", "outcome"])
HANDLER_SECONDS = Histogram(
    "inlet_listener_handler_seconds",
    "Time a handler spent on one event",
    ["handler"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REDELIVERIES = Counter("inlet_listener_redeliveries", "Messages the broker delivered again (redelivered header)")
DUPLICATES = Counter("inlet_listener_duplicates", "Handler runs skipped because the ledger had the event")
DEAD_LETTERED = Counter("inlet_listener_dead_lettered", "Messages sent to the DLQ", ["reason"])
DLQ_SIZE = Gauge("inlet_listener_dlq_size", "Messages in the dead-letter queue at the last look")
LAG = Histogram(
    "inlet_listener_lag_seconds",
    "Event age when handled (now - created_at)",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
RECONNECTS = Counter("inlet_listener_reconnects", "Broker (re)connections after the first")
OUTBOX_SENT = Counter("inlet_listener_outbox_sent", "Outbox messages sent")
ALARMS = Counter(
    "inlet_listener_alarms",
    "Alarms handled by the webhook sender: posted, logged (no webhook set) or suppressed by the rate limit",
    ["outcome"],
)
