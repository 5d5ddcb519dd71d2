"""Batches as big as the workers' backlog: one file each while they keep up, more when behind."""

from __future__ import annotations

from typing import Any

import pytest

from inlet.uploader.batching import Gatherer


class Task:
    def __init__(self) -> None:
        self.done = False

    def ready(self) -> bool:
        return self.done


class Queue:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.tasks: list[Task] = []

    def submit(self, batch: list[dict[str, Any]]) -> list[Task]:
        self.batches.append([i["path"] for i in batch])
        t = Task()
        self.tasks.append(t)
        return [t]


def _files(*names: str) -> list[dict[str, Any]]:
    return [{"path": n} for n in names]


def test_while_the_workers_keep_up_each_file_goes_at_once_alone() -> None:
    q = Queue()
    g = Gatherer(q.submit, batch_size=100, max_in_flight=2)
    for n in ("a", "b", "c"):
        g.add(_files(n))
        assert g.flush() == 1
        q.tasks[-1].done = True  # the worker finished it before the next file closed
    assert q.batches == [["a"], ["b"], ["c"]]


def test_while_every_worker_process_is_busy_files_gather_into_one_batch() -> None:
    q = Queue()
    g = Gatherer(q.submit, batch_size=100, max_in_flight=2)
    g.add(_files("a"))
    g.flush()
    g.add(_files("b"))
    g.flush()
    for n in "cdef":  # both batches in flight: nothing handed over
        g.add(_files(n))
        assert g.flush() == 0
    q.tasks[0].done = True
    assert g.flush() == 4
    assert q.batches == [["a"], ["b"], ["c", "d", "e", "f"]]
    assert g.sizes == [1, 1, 4]


def test_a_batch_never_exceeds_batch_size_and_force_hands_over_the_rest() -> None:
    q = Queue()
    g = Gatherer(q.submit, batch_size=3, max_in_flight=1)
    g.add(_files("a"))
    g.flush()
    g.add(_files(*"bcdefgh"))
    assert g.flush() == 6  # full batches go even while busy
    assert q.batches == [["a"], ["b", "c", "d"], ["e", "f", "g"]]
    assert g.flush(force=True) == 1
    assert q.batches[-1] == ["h"]
    assert g.flush(force=True) == 0


def test_a_gatherer_needs_room_for_one_batch() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Gatherer(Queue().submit, batch_size=0, max_in_flight=1)
    with pytest.raises(ValueError, match="at least 1"):
        Gatherer(Queue().submit, batch_size=1, max_in_flight=0)


def test_a_batch_whose_submit_fails_stays_pending_and_goes_with_the_next_flush() -> None:
    q = Queue()
    failing = True

    def submit(batch: list[dict[str, Any]]) -> list[Task]:
        if failing:
            raise ConnectionError("Redis is restarting")
        return q.submit(batch)

    g = Gatherer(submit, batch_size=100, max_in_flight=2)
    g.add(_files("a", "b"))
    with pytest.raises(ConnectionError):
        g.flush()
    assert [i["path"] for i in g.pending] == ["a", "b"]
    failing = False
    assert g.flush() == 2
    assert q.batches == [["a", "b"]] and g.pending == []
