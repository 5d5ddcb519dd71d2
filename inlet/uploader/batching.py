"""Closed files gathered into batches as big as the workers' backlog: one file at a time when the
workers keep up, more per batch when they fall behind.

A batch costs the Rucio server a fixed part per call (the attach with replicas, and the per-file
rules, whose call costs about 100 ms of server time before the first DID: RSE expression,
account, limits) plus a small part per file, so at 10 files a second one-file batches spend most
of the lake's CPU on that fixed part. Waiting a fixed time to gather files would delay every file
at a slow rate too. So a batch is handed over as soon as fewer than ``max_in_flight`` of this
submitter's batches are still being worked on (queued, reserved by a worker, or running): at a
slow rate that is at once, and while the workers are busy the closed files gather, so the batch
size follows the backlog by itself (and never exceeds ``batch_size``).

Why not the queue's length: a Celery worker reserves tasks ahead (prefetch), so the queue reads
empty while every worker process has a batch waiting, and each new file became a batch of its
own. The results backend (Redis) knows when a task has finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Pending(Protocol):
    """What :func:`inlet.uploader.api.submit` returns per batch (a Celery AsyncResult)."""

    def ready(self) -> bool: ...


class Gatherer:
    """Hands closed files to ``submit`` in batches sized by how many of its batches are in flight."""

    def __init__(
        self, submit: Callable[[list[dict[str, Any]]], Sequence[Pending]], batch_size: int, max_in_flight: int
    ) -> None:
        if batch_size < 1 or max_in_flight < 1:
            raise ValueError("batch_size and max_in_flight must be at least 1")
        self.submit = submit
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.pending: list[dict[str, Any]] = []
        self.in_flight: list[Pending] = []
        #: Sizes of the batches handed over, in order (for reports and tests).
        self.sizes: list[int] = []

    def add(self, items: Sequence[dict[str, Any]]) -> None:
        self.pending.extend(items)

    def busy(self) -> int:
        """Batches of this gatherer not finished yet (a finished one is forgotten)."""
        self.in_flight = [r for r in self.in_flight if not r.ready()]
        return len(self.in_flight)

    def flush(self, force: bool = False) -> int:
        """Hand over what may go now (everything with ``force``); the number of files handed over."""
        sent = 0
        while self.pending and (force or len(self.pending) >= self.batch_size or self.busy() < self.max_in_flight):
            batch = self.pending[: self.batch_size]
            # Dropped from pending only once submitted: a submit that raises (Redis restarting)
            # leaves the batch to the next flush, never loses it.
            self.in_flight.extend(self.submit(batch))
            del self.pending[: len(batch)]
            self.sizes.append(len(batch))
            sent += len(batch)
        return sent
