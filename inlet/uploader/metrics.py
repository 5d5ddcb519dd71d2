"""Prometheus metrics of a worker process (exposed when ``[uploader] metrics_port`` is set)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

FILES = Counter("inlet_uploader_files_total", "Files registered by the uploader")
BYTES = Counter("inlet_uploader_bytes_total", "Bytes registered by the uploader")
ERRORS = Counter("inlet_uploader_errors_total", "Files refused, failed or quarantined", ["kind"])
BATCH_SECONDS = Histogram(
    "inlet_uploader_batch_seconds", "Seconds to place and register one batch",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)  # fmt: skip


def observe(result: dict[str, Any]) -> None:
    FILES.inc(len(result["registered"]))
    BYTES.inc(result["bytes"])
    ERRORS.labels("failed").inc(len(result["failed"]))
    ERRORS.labels("quarantined").inc(len(result["quarantined"]))
    BATCH_SECONDS.observe(result["seconds"])
