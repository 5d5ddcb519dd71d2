"""The follower: every file a selection names, once, in availability order, as an iterator.

::

    from inlet.follow.follower import Follower

    with Follower("raw: stream = 'ksl'", rse="S3", name="reco-ksl", catalog=cat, broker=settings.broker) as f:
        for file in f:          # FollowedFile, history first, then live, forever
            process(file)       # the cursor moves past `file` when the next one is asked for

How it works: the catalogue's availability rows are the stream (:mod:`inlet.follow.source`);
broker events (Rucio's ``transfer-done``/``datasetlock_ok``/``rule_ok`` and inlet's
``file-registered``, :mod:`inlet.follow.feed`) only wake the follower. After a wake-up it reads
the rows after its cursor, and keeps looking every ``burst_every`` seconds for ``burst``
seconds, because the listener writes the row a little after the event reached everyone. A slow
``tick`` covers a broker that is down or an event that never came.

Exactly once per named follower: the position (a :class:`~inlet.follow.source.Cursor`) is stored
in the catalogue (``follower_cursors``) after the consumer has finished with each file, i.e.
when it asks for the next one (or calls :meth:`Follower.ack`). A file whose handling was cut by
a crash is handed out again after the restart (it was not finished); a finished one never is,
and none is skipped. Two processes cannot be the same follower at once: the broker gives one
connection at a time the name's durable subscription, and a named follower starts only once it
holds it (:class:`~inlet.follow.feed.FeedInUse` otherwise).

Backpressure: nothing is read ahead of the consumer beyond one batch; broker events are
coalesced into a flag. A slow consumer makes the follower read later, never drop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from typing import Literal

from rucio_inlet.catalog_models import FollowerCursor

from inlet.catalog.db import Catalog
from inlet.config import BrokerSettings
from inlet.errors import InletError
from inlet.follow.feed import DurableFeed, FeedInUse, check_name
from inlet.follow.source import GAP_TIMEOUT, Cursor, FollowedFile, GapGuard, last_seq, seq_at
from inlet.messaging import BrokerUnavailable, Message
from inlet.select.grammar import Selection, parse_selection

log = logging.getLogger(__name__)

#: The events after which an availability row may have appeared (the broker filters on them).
WAKE_EVENTS = ("transfer-done", "datasetlock_ok", "rule_ok", "file-registered")
#: The client-id prefix of followers' durable subscriptions (apart from other feeds' names).
FEED_PREFIX = "follow."

Start = Literal["now", "start"] | dt.datetime


class Follower:
    """Iterate over the files of ``selection`` as they become available (on ``rse``, if given).

    - ``name``: a durable follower (cursor in the catalogue, durable broker subscription).
      Without one, the position lives in memory only.
    - ``start``: where a follower without a stored position begins: ``"now"`` (only what becomes
      available from now on), ``"start"`` (the whole history first) or a datetime (``--since``).
      A named follower that has a position resumes from it whatever ``start`` says.
    - ``broker``: ``None`` follows by polling every ``tick`` seconds only (tests, or no broker).
    - ``stop``: set it (from another thread or a signal handler) to end the iteration cleanly.
    """

    def __init__(
        self,
        selection: str | Selection,
        *,
        catalog: Catalog,
        broker: BrokerSettings | None,
        rse: str | None = None,
        name: str | None = None,
        start: Start = "now",
        batch: int = 200,
        tick: float = 5.0,
        burst: float = 10.0,
        burst_every: float = 0.05,
        gap_timeout: float = GAP_TIMEOUT,
        connect_timeout: float = 30.0,
        heartbeat_ms: int = 5000,
        stop: threading.Event | None = None,
    ) -> None:
        self.text = selection if isinstance(selection, str) else ""
        self.selection = parse_selection(selection) if isinstance(selection, str) else selection
        self.catalog = catalog
        self.broker = broker
        self.rse = rse
        self.name = None if name is None else check_name(name)
        self.start = start
        self.batch = batch
        self.tick = tick
        self.burst = burst
        self.burst_every = burst_every
        self.gap_timeout = gap_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat_ms = heartbeat_ms
        self.stopping = stop or threading.Event()
        self._wake = threading.Event()
        self._guard: GapGuard | None = None
        self._feed: DurableFeed | None = None
        self._in_hand: FollowedFile | None = None
        self._saved: Cursor | None = None
        #: How many files were handed out, and how many wake-ups came from the broker.
        self.handed_out = 0
        self.wakeups = 0

    # -- position ------------------------------------------------------------------------------
    @property
    def cursor(self) -> Cursor | None:
        """The position after every finished file (``None`` before the iteration began)."""
        return None if self._guard is None else self._guard.cursor

    def _load(self) -> Cursor:
        with self.catalog.session() as s:
            row = s.get(FollowerCursor, self.name) if self.name else None
            if row is not None:
                if row.selection != self.text or row.rse != self.rse:
                    raise InletError(
                        f"follower {self.name!r} follows {row.selection!r} on {row.rse or 'every RSE'}, "
                        f"not {self.text!r} on {self.rse or 'every RSE'}",
                        f"use another --name, or `inlet follow --forget {self.name}` to drop its position",
                    )
                return Cursor.parse(row.position)
            if self.start == "start":
                floor = 0
            elif self.start == "now":
                floor = last_seq(s)
            else:
                floor = seq_at(s, self.start)
            cursor = Cursor(floor)
            if self.name:
                s.add(FollowerCursor(name=self.name, position=cursor.token(), selection=self.text, rse=self.rse))
            return cursor

    def _save(self) -> None:
        if not self.name or self._guard is None:
            return
        cursor = self._guard.cursor
        if cursor == self._saved:
            return
        with self.catalog.session() as s:
            row = s.get(FollowerCursor, self.name)
            if row is None:
                raise InletError(
                    f"the position of follower {self.name!r} was removed while it ran",
                    "restart it (it starts afresh) or stop the process that ran --forget",
                )
            if self._saved is not None and row.position != self._saved.token():
                # A backstop to the broker's lock (a second process took the name while this one
                # was cut off from the broker): never overwrite what another run stored.
                raise InletError(
                    f"another process moved the position of follower {self.name!r} while this one ran",
                    "run one process per --name; restart this one to resume from the stored position",
                )
            row.position = cursor.token()
        self._saved = cursor

    def ack(self) -> None:
        """The file last handed out is finished: store the position now (otherwise at the next ``next()``)."""
        if self._in_hand is not None and self._guard is not None:
            self._guard.mark(self._in_hand.seq)
            self._in_hand = None
            self._save()

    # -- the feed ------------------------------------------------------------------------------
    def _on_message(self, _message: Message) -> None:
        self.wakeups += 1
        self._wake.set()

    def _open_feed(self) -> None:
        if self.broker is None:
            return
        selector = "event_type IN (" + ", ".join(f"'{e}'" for e in WAKE_EVENTS) + ")"
        feed = DurableFeed(
            self.broker,
            [self.broker.rucio_topic, self.broker.inlet_topic],
            name=None if self.name is None else FEED_PREFIX + self.name,
            on_message=self._on_message,
            on_connected=self._wake.set,  # catch up on whatever happened while not connected
            selector=selector,
            heartbeat_ms=self.heartbeat_ms,
        )
        if self.name is not None:
            # The name is a lock: hold the durable subscription before handing anything out. A
            # follower killed a moment ago may still hold it until the broker notices (heart-beats).
            deadline = time.monotonic() + self.connect_timeout
            delay = 0.25
            while True:
                try:
                    feed.connect()
                    break
                except (FeedInUse, BrokerUnavailable) as exc:
                    if time.monotonic() + delay > deadline or self.stopping.is_set():
                        raise exc from None
                    log.info("follower %s: %s; retrying", self.name, exc.problem)
                    self.stopping.wait(delay)
                    delay = min(delay * 2, 4.0)
        self._feed = feed
        feed.start()

    def close(self) -> None:
        """Stop the feed (a durable subscription stays, keeping events for the next run)."""
        if self._feed is not None:
            self._feed.stop()
            self._feed = None

    def forget(self) -> None:
        """Remove this follower's stored position and its durable subscription."""
        if self.name is None:
            return
        if self.broker is not None:
            feed = DurableFeed(
                self.broker,
                [self.broker.rucio_topic, self.broker.inlet_topic],
                name=FEED_PREFIX + self.name,
                on_message=lambda _m: None,
            )
            feed.forget()
        with self.catalog.session() as s:
            row = s.get(FollowerCursor, self.name)
            if row is not None:
                s.delete(row)

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- iteration -----------------------------------------------------------------------------
    def open(self) -> None:
        """Take the starting position and (named) the broker name; :meth:`__iter__` calls it.

        Done eagerly, not at the first ``next()``: "now" is when the iteration was asked for, and
        a bad name or a follower already running elsewhere is an error at once.
        """
        if self._guard is not None:
            return
        self._open_feed()  # first: for a named follower, the broker's name is the lock
        try:
            guard = GapGuard(self._load(), timeout=self.gap_timeout)
        except BaseException:
            self.close()
            raise
        self._saved = guard.cursor
        self._guard = guard

    def __iter__(self) -> Iterator[FollowedFile]:
        self.open()
        return self._run()

    def _run(self) -> Iterator[FollowedFile]:
        try:
            while not self.stopping.is_set():
                rows = self._poll()
                for f in rows:
                    self._in_hand = f
                    self.handed_out += 1
                    yield f
                    self.ack()
                    if self.stopping.is_set():
                        return
                if len(rows) >= self.batch:
                    continue
                self._save()  # the floor may have moved past gaps and other selections' rows
                self._wait(bool(rows))
        finally:
            with contextlib.suppress(Exception):
                self._save()
            self.close()

    def _poll(self) -> list[FollowedFile]:
        assert self._guard is not None
        with self.catalog.session() as s:
            return self._guard.poll(s, self.selection, rse=self.rse, limit=self.batch)

    def _wait(self, found: bool) -> None:
        """Sleep until a wake-up (then look every burst_every s for burst s) or the tick."""
        if not found and not self._wake.is_set():
            woken = self._wait_for_wake(self.tick)
            if not woken:
                return
        # Woken (or just found something): the listener may still be writing; look often a while.
        until = time.monotonic() + self.burst
        while time.monotonic() < until and not self.stopping.is_set():
            if self._wake.is_set():
                self._wake.clear()
                until = time.monotonic() + self.burst
            self.stopping.wait(self.burst_every)
            assert self._guard is not None
            if self._peek():
                return

    def _wait_for_wake(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._wake.wait(min(left, 0.5)):
                return True
        return False

    def _peek(self) -> bool:
        """True if there may be rows to hand out (one cheap query for the highest id)."""
        assert self._guard is not None
        with self.catalog.session() as s:
            return last_seq(s) > self._guard.high_water
