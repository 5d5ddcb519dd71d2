"""Live updates: broker events wake a cheap catalogue check; a change is pushed to browsers over SSE.

The broker says *that* something happened (a transfer done, a rule OK, a file registered); the
catalogue, written by the listener a moment later, says *what* each viewer may see. So an event
only starts a short burst of checks of :func:`inlet.web.sources.change_mark` (three primary-key
maxima, microseconds at any size), and a change pushes the bare word "changed": each browser
then asks for its own page again, rendered under its own login, and no name ever travels on the
shared stream. A slow check without events covers a broker that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator

import anyio.to_thread

from inlet.catalog.db import Catalog
from inlet.config import BrokerSettings
from inlet.messaging import BrokerUnavailable, Connection, Message, Subscription
from inlet.web import metrics
from inlet.web.sources import change_mark

log = logging.getLogger(__name__)


class ChangeFeed:
    """Fans one catalogue watcher out to every open SSE stream."""

    def __init__(
        self,
        catalog: Catalog,
        broker: BrokerSettings | None,
        *,
        idle_check: float = 5.0,
        burst: float = 10.0,
        burst_every: float = 0.5,
        heartbeat_ms: int = 5000,
    ) -> None:
        self.catalog = catalog
        self.broker = broker
        self.idle_check = idle_check
        self.burst = burst
        self.burst_every = burst_every
        self.heartbeat_ms = heartbeat_ms
        self.mark: tuple[int, int, int] | None = None
        self._clients: set[asyncio.Queue[str]] = set()
        self._waiters: set[asyncio.Event] = set()
        self._poke = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.mark = await anyio.to_thread.run_sync(self._read_mark)
        self._tasks.append(asyncio.create_task(self._watch()))
        if self.broker is not None:
            self._thread = threading.Thread(target=self._listen, name="web-broker-feed", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for q in list(self._clients):
            q.put_nowait("")
        for w in list(self._waiters):
            w.set()

    # -- the broker side (a thread of its own: stomp.py calls back from its receiver thread) -----
    def poke_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._poke.set)

    def _listen(self) -> None:
        assert self.broker is not None
        b = self.broker

        def wake(_message: Message) -> None:
            metrics.BROKER_EVENTS.inc()
            self.poke_threadsafe()

        # The readers' login: it may subscribe to the two topics and nothing else. Heart-beats
        # as the listener's: with none (or slow ones) the broker drops an idle reader.
        conn = Connection(
            b,
            role="reader",
            subscriptions=[Subscription(b.rucio_topic, "rucio"), Subscription(b.inlet_topic, "inlet")],
            on_message=wake,
            heartbeat_ms=self.heartbeat_ms,
        )
        wait = 1.0
        while not self._stop.is_set():
            try:
                conn.connect()
                log.info("live updates: subscribed to %s and %s", b.rucio_topic, b.inlet_topic)
                wait = 1.0
                while not self._stop.is_set() and conn.is_connected():
                    self._stop.wait(1.0)
            except BrokerUnavailable as exc:  # the idle check still runs; retry later
                log.warning("live updates: %s; retrying in %.0f s", exc.problem, wait)
            finally:
                conn.close()
            self._stop.wait(wait)
            wait = min(wait * 2, 30.0)

    # -- the catalogue side ----------------------------------------------------------------------
    def _read_mark(self) -> tuple[int, int, int]:
        with self.catalog.session() as s:
            return change_mark(s)

    async def _check(self) -> None:
        try:
            mark = await anyio.to_thread.run_sync(self._read_mark)
        except Exception as exc:  # a catalogue hiccup must not end live updates
            log.warning("live updates: catalogue check failed: %s", exc)
            return
        if mark != self.mark:
            self.mark = mark
            metrics.CHANGES.inc()
            for q in list(self._clients):
                q.put_nowait("changed")
            for w in list(self._waiters):
                w.set()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.idle_check)
            woken = self._poke.is_set()
            self._poke.clear()
            await self._check()
            if woken:
                # The listener writes the catalogue after the event reached us: look again for a while.
                until = loop.time() + self.burst
                while loop.time() < until:
                    # A new event ends the wait at once (a steady flow keeps its latency low);
                    # otherwise look again after burst_every.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._poke.wait(), self.burst_every)
                    if self._poke.is_set():
                        self._poke.clear()
                        until = loop.time() + self.burst
                    await self._check()

    # -- the followers' side (inlet.web.follow) ---------------------------------------------------
    @contextlib.contextmanager
    def waker(self) -> Iterator[asyncio.Event]:
        """An event set whenever the catalogue changes (one flag per follower: a wake-up it has not
        taken yet is not queued twice), registered for the life of the ``with`` block."""
        event = asyncio.Event()
        self._waiters.add(event)
        try:
            yield event
        finally:
            self._waiters.discard(event)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the browsers' side ----------------------------------------------------------------------
    async def stream(self) -> AsyncIterator[dict[str, str]]:
        q: asyncio.Queue[str] = asyncio.Queue()
        self._clients.add(q)
        metrics.SSE_CLIENTS.inc()
        try:
            yield {"event": "hello", "data": "live"}
            while True:
                item = await q.get()
                if not item:
                    return
                # Coalesce a burst of changes into one refresh.
                while not q.empty():
                    if not q.get_nowait():
                        return
                yield {"event": "changed", "data": "changed"}
        finally:
            self._clients.discard(q)
            metrics.SSE_CLIENTS.dec()
