"""Prometheus metrics of a worker: files, bytes, errors, batch time, and latency to registration.

Served on ``[uploader] metrics_host:metrics_port`` (127.0.0.1 by default) by the worker's main process when the port is
set (0: off). Celery's default pool forks child processes and the tasks, so the observations,
run in those children, while only the main process lives as long as the worker. Serving from
the main process fed by worker signals would not work: ``task_success``/``task_postrun`` fire
in the child that ran the task, not in the main process. So this is prometheus_client's
multiprocess mode: every process writes its samples to memory-mapped files in a directory of
this worker's own, and the main process serves their sum (a recycled child's counts stay in
its files, so totals never go back). The directory must be known before prometheus_client
creates a metric in any process, which is why :func:`prepare` runs at ``worker_init``, before
the pool forks, and this module's metrics are created lazily.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300, 3600)


@dataclass(frozen=True)
class Metrics:
    files: Any
    bytes: Any
    errors: Any
    batch_seconds: Any
    latency: Any


@functools.cache
def metrics() -> Metrics:
    from prometheus_client import Counter, Histogram

    return Metrics(
        files=Counter("inlet_uploader_files", "Files registered by the uploader"),
        bytes=Counter("inlet_uploader_bytes", "Bytes registered by the uploader"),
        errors=Counter("inlet_uploader_errors", "Files refused, failed or quarantined", ["kind"]),
        batch_seconds=Histogram(
            "inlet_uploader_batch_seconds",
            "Seconds to place and register one batch",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        ),
        latency=Histogram(
            "inlet_uploader_latency_seconds",
            "Seconds from a file's close (its mtime) or its submission to its registration in Rucio",
            ["since"],
            buckets=LATENCY_BUCKETS,
        ),
    )


def observe(result: dict[str, Any]) -> None:
    m = metrics()
    m.files.inc(len(result["registered"]))
    m.bytes.inc(result["bytes"])
    m.errors.labels("failed").inc(len(result["failed"]))
    m.errors.labels("quarantined").inc(len(result["quarantined"]))
    m.batch_seconds.observe(result["seconds"])
    for since, values in (result.get("latency") or {}).items():
        for v in values:
            m.latency.labels(since).observe(max(0.0, float(v)))


def prepare(directory: Path) -> None:
    """Main process, before the pool forks: an empty sample directory for this worker, for every process."""
    shutil.rmtree(directory, ignore_errors=True)  # samples of an earlier run would be summed in
    directory.mkdir(parents=True)
    os.environ[ENV] = str(directory)
    import prometheus_client.values as values

    # If something imported prometheus_client before the variable was set, it chose the
    # single-process value class at import: choose again (no metric exists yet, see metrics()).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Main process: serve the sum over every process of this worker on <host>:<port>."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.environ[ENV])  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        # Metrics are an operator's view, not the uploader's job: the worker uploads without them.
        log.error(
            "uploader metrics: port %d is taken (%s); set another [uploader] metrics_port or 0 for none", port, exc
        )
        return
    log.info("uploader metrics on http://%s:%d/metrics", host, port)
