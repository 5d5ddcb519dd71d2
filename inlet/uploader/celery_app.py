"""The Celery app: ``celery -A inlet.uploader worker`` (broker: ``[redis] url``).

Tasks are acknowledged only after they finish (``acks_late``) and re-queued if their worker
dies (``reject_on_worker_lost``): a killed worker loses no file, and the pipeline is
idempotent, so the batch it was doing is simply done again. Rucio, storage or catalogue
errors retry the batch with exponential backoff and jitter (a retry takes pacing tokens
again: it loads Rucio and storage again); a batch never gives up on pacing (it waits for
tokens instead).

Redis (broker and result backend) may restart under a running worker: the consumer
reconnects by itself, pacing waits for Redis (:func:`inlet.uploader.pacing.through_outage`),
results are stored with retries, and a worker re-queues a batch (retry, file still being
written) with a publish that waits for Redis as long as it takes, since giving up there
would drop the batch. The AOF of the lake's Redis keeps what was queued.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import Any

from celery import Celery, Task, signals

from inlet.config import secret_values
from inlet.logs import install_secret_filter
from inlet.uploader import app_runtime
from inlet.uploader.pacing import ERRORS, REGISTERED, bump

log = logging.getLogger(__name__)

_settings = app_runtime.settings()
# Workers log through Celery's own handlers, not inlet's set-up: mask at the record factory, so
# a Redis URL or a Rucio password in an error never reaches a worker log.
install_secret_filter(secret_values(_settings))

app = Celery("inlet.uploader", broker=_settings.redis.url, backend=_settings.redis.url)
app.conf.update(
    # Kombu's Redis transport, except that an item pushed into a queue that is not a task message
    # is dropped with an alarm instead of ending the worker (inlet.celery_transport).
    broker_transport="inlet.celery_transport:Transport",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=_settings.uploader.queue,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=7 * 86400,
    broker_connection_retry_on_startup=True,
    # Longer than any batch may take: Redis re-delivers an unacknowledged task after this.
    broker_transport_options={"visibility_timeout": _settings.uploader.visibility_timeout},
    worker_hijack_root_logger=False,
    # A result that cannot be stored during a Redis restart is stored once Redis is back.
    result_backend_always_retry=True,
    result_backend_max_sleep_between_retries_ms=2000,
)

#: Publishing from inside a worker (a batch's retry or re-queue) waits for the broker however long
#: it is away: the task being run is acknowledged afterwards, so a failed publish would lose the batch.
#: (Clients keep Celery's short default: `inlet upload` should fail, not hang, without a broker.)
WORKER_PUBLISH = {
    "retry": True,
    "retry_policy": {"max_retries": None, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0},
}


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _metrics_dir(sender: Any = None, **_: Any) -> None:
    settings = app_runtime.settings()
    if settings.uploader.metrics_port:
        from inlet.uploader import metrics
        from inlet.uploader.pipeline import state_path

        # One directory per worker (its node name): two workers on a host never mix their samples.
        worker = str(getattr(sender, "hostname", "worker"))
        metrics.prepare(state_path(settings, settings.uploader.state_dir) / "metrics" / worker)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _metrics_server(**_: Any) -> None:
    # After the pool forked: the children do not inherit the listening socket.
    uploader = app_runtime.settings().uploader
    if uploader.metrics_port:
        from inlet.uploader import metrics

        metrics.serve(uploader.metrics_port, uploader.metrics_host)


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _preload(**_: Any) -> None:
    # Imported once in the parent, before the pool forks, so that a child's first batch does not
    # spend a second or two importing Rucio's client. Only the client: Rucio's storage protocols
    # import rucio.core, whose database engine must never be shared across fork (the children
    # then fail with random SQL errors against the lake's rucio.cfg, which has a [database]).
    import rucio.client

    log.debug("preloaded %s", rucio.client.__name__)


_uploader: Any = None


def uploader() -> Any:
    global _uploader
    if _uploader is None:
        from inlet.uploader.pipeline import Uploader

        _uploader = Uploader(app_runtime.settings())
    return _uploader


def _backoff(retries: int) -> float:
    base = app_runtime.settings().uploader.retry_backoff
    return float(min(300.0, base * 2**retries) * random.uniform(0.5, 1.5))


@app.task(bind=True, name="inlet.upload_batch", max_retries=None)  # type: ignore[untyped-decorator]
def upload_batch(
    self: Task, items: list[dict[str, Any]], run: int, stream: str, experiment: str | None = None
) -> dict[str, Any]:
    from inlet.uploader.plan import BadInput, check_task
    from inlet.uploader.roots import Refused, worker_roots

    settings = app_runtime.settings()
    r = app_runtime.redis_client(settings.redis.url)
    try:
        # A task message is input: malformed arguments end this task (no retry), never the worker.
        items, refused = check_task(items, run, stream, experiment)
    except BadInput as exc:
        log.error("ALARM %s", exc)
        bump(r, ERRORS)
        raise
    for what, why in refused.items():
        log.error("ALARM upload task of run %s: %s refused: %s", run, what, why)
    # Pacing counts the bytes on disk of files inside the DAQ roots, not what the message claims.
    roots = worker_roots(settings)
    nbytes = 0
    for item in items:
        with contextlib.suppress(Refused):
            nbytes += roots.check(item["path"]).size
    app_runtime.bucket(settings).take(len(items), nbytes, who=self.request.hostname)
    started = time.monotonic()
    try:
        res = uploader().upload_batch(items, run, stream, experiment)
    except BadInput:
        raise
    except Exception as exc:
        bump(r, ERRORS)
        if self.request.retries >= settings.uploader.retries:
            log.error("batch of run %s failed for good after %d retries: %s", run, self.request.retries, exc)
            raise
        delay = _backoff(self.request.retries)
        log.warning("batch of run %s failed (%s: %s); retry in %.1f s", run, type(exc).__name__, exc, delay)
        raise self.retry(exc=exc, countdown=delay, **WORKER_PUBLISH) from exc
    res.failed.update(refused)
    bump(r, REGISTERED, len(res.registered))
    bump(r, ERRORS, len(res.failed) + len(res.quarantined))
    if res.retry:
        # Files still being written: they come back later, on their own, not dropped.
        upload_batch.apply_async((res.retry, run, stream, experiment), countdown=_backoff(0) + 1.0, **WORKER_PUBLISH)
    out: dict[str, Any] = res.as_dict()
    out["seconds"] = time.monotonic() - started
    from inlet.uploader import metrics

    metrics.observe(out)
    return out


@app.task(bind=True, name="inlet.end_run", max_retries=None)  # type: ignore[untyped-decorator]
def end_run(self: Task, run: int, stream: str, experiment: str | None = None, expected_files: int | None = None) -> str:
    from inlet.uploader.pipeline import RunNotComplete
    from inlet.uploader.plan import BadInput, check_task

    check_task([], run, stream, experiment)  # a malformed task fails at once (BadInput), never retried
    if expected_files is not None and (isinstance(expected_files, bool) or not isinstance(expected_files, int)):
        raise BadInput(f"task refused: expected_files {str(expected_files)[:40]!r} is not a whole number")
    try:
        state: str = uploader().end_run(run, stream, experiment, expected_files)
        return state
    except RunNotComplete as exc:
        raise self.retry(exc=exc, countdown=2.0, **WORKER_PUBLISH) from exc
    except BadInput:
        raise
    except Exception as exc:
        if self.request.retries >= app_runtime.settings().uploader.retries:
            raise
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries), **WORKER_PUBLISH) from exc
