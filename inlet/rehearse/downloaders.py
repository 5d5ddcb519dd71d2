"""Site B's two downloaders: event-driven (inlet's proposal) and polling (the 2019 rehearsal's).

Both fetch through Rucio's own protocol for the download RSE (``rsemanager``: posix, http, or
inlet's S3 class), into a local directory, and verify adler32 against what the DAQ wrote, so
they differ only in how they learn that a chunk is at site B:

- :class:`EventDownloader` subscribes to Rucio's ``transfer-done`` (hermes) and inlet's
  ``file-registered`` and fetches the moment the event arrives;
- :class:`PollingDownloader` lists the run dataset's replicas at site B every N seconds.

Rucio is imported lazily: it reads ``RUCIO_CONFIG`` once, at first import, and the caller sets
it up first.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rucio_inlet.checksums import file_adler32

from inlet import messaging
from inlet.config import BrokerSettings
from inlet.event_contract import FILE_REGISTERED
from inlet.follow.feed import DurableFeed
from inlet.rehearse.timeline import CORRUPTED, DOWNLOADED, Timeline, rucio_time

log = logging.getLogger(__name__)

#: Rucio's event (hermes) for a finished transfer.
TRANSFER_DONE = "transfer-done"


class SiteB:
    """Read access to the download RSE through the protocol Rucio lists for it."""

    def __init__(self, rse: str) -> None:
        from rucio.rse import rsemanager

        self.rse = rse
        self._rsemgr = rsemanager
        self.info: Any = rsemanager.get_rse_info(rse=rse)

    @property
    def posix(self) -> bool:
        """Its read protocol is a local file system (the corruption drill can reach the bytes)."""
        return any(p.get("scheme") == "file" for p in self.info.get("protocols", []))

    def pfn(self, scope: str, name: str) -> str:
        pfns: dict[str, str] = self._rsemgr.lfns2pfns(self.info, [{"scope": scope, "name": name}], operation="read")
        return next(iter(pfns.values()))

    def fetch(self, pfn: str, dest: Path) -> None:
        proto = self._rsemgr.create_protocol(self.info, "read", scheme=urlparse(pfn).scheme or None)
        proto.connect()
        try:
            proto.get(pfn, str(dest))
        finally:
            proto.close()


class Drill:
    """Fault drill: corrupt chosen chunks' replicas at site B as they land, before any download.

    Whichever downloader reaches a drilled chunk first flips one byte of its replica in place;
    both must then report it corrupted. Only POSIX (``file://``) replicas can be drilled.
    """

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.done: set[str] = set()
        self._lock = threading.Lock()

    def before_fetch(self, name: str, pfn: str) -> None:
        if name not in self.names:
            return
        with self._lock:
            if name in self.done:
                return
            url = urlparse(pfn)
            if url.scheme != "file":
                raise RuntimeError(f"the corruption drill needs a POSIX replica, got {pfn}")
            with open(url.path, "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 0xFF]))
            self.done.add(name)
            log.warning("drill: corrupted the site-B replica of %s (%s)", name, pfn)


class _Fetcher:
    """Fetch-and-verify on a thread pool; the outcome goes into the timeline under ``prefix``."""

    def __init__(
        self, prefix: str, site: SiteB, timeline: Timeline, dest: Path, workers: int, drill: Drill, keep: bool
    ) -> None:
        self.prefix = prefix
        self.site = site
        self.timeline = timeline
        self.dest = dest
        self.drill = drill
        self.keep = keep
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix=f"fetch-{prefix}")
        #: Completed fetches (verified or found corrupted) per chunk: more than one is a duplicate download.
        self.fetches: dict[str, int] = {}
        #: Called with the chunk's name after a failed fetch (its owner may try again later).
        self.on_failed: Callable[[str], None] | None = None
        dest.mkdir(parents=True, exist_ok=True)

    def submit(self, name: str, pfn: str) -> None:
        self.pool.submit(self._fetch, name, pfn)

    def _fetch(self, name: str, pfn: str) -> None:
        chunk = self.timeline.get(name)
        if chunk is None:
            return
        target = self.dest / name
        try:
            self.drill.before_fetch(name, pfn)
            target.unlink(missing_ok=True)
            self.site.fetch(pfn, target)
            got = file_adler32(target)
        except Exception as exc:
            # A failed fetch is retried once the chunk is announced again (polling) or not at all
            # (events): the report shows it as not downloaded, with this reason.
            log.warning("%s: fetching %s failed: %s", self.prefix, name, exc)
            self.timeline.record(name, {f"{self.prefix}_error": f"{type(exc).__name__}: {exc}"})
            if self.on_failed is not None:
                self.on_failed(name)
            return
        now = time.time()
        self.fetches[name] = self.fetches.get(name, 0) + 1
        if got != chunk.adler32:
            self.timeline.record(
                name,
                {
                    f"{self.prefix}_done": now,
                    f"{self.prefix}_status": CORRUPTED,
                    f"{self.prefix}_error": f"adler32 {got} at site B, {chunk.adler32} written by the DAQ",
                },
            )
        else:
            self.timeline.record(name, {f"{self.prefix}_done": now, f"{self.prefix}_status": DOWNLOADED})
        if not self.keep:
            target.unlink(missing_ok=True)

    def duplicates(self) -> int:
        """Downloads beyond the first of a chunk."""
        return sum(n - 1 for n in self.fetches.values() if n > 1)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)


class EventDownloader:
    """Fetch each chunk as soon as Rucio says its replica at site B is done.

    Events published while it is not connected (a broker restart, its own crash) are not lost
    to it: its subscription is durable (:class:`inlet.follow.feed.DurableFeed`, the one ``inlet
    follow`` uses), so the broker keeps them for it, and after every (re)connect it also lists
    the run datasets' replicas at site B and fetches only the chunks it has not taken yet
    (``catch_up``: for what was published before the subscription existed, or while the broker
    itself was down), then again a few seconds later for the transfers whose replica was not
    yet AVAILABLE at the first listing. A chunk is
    fetched once whatever the path (event, repeated event, catch-up): ``claimed`` holds every
    chunk in flight or done; a failed fetch gives its claim back.
    """

    #: Seconds after a (re)connect for the second catch-up listing (finisher lag behind transfer-done).
    CATCH_UP_AGAIN = 8.0

    def __init__(
        self,
        broker: BrokerSettings,
        site: SiteB,
        timeline: Timeline,
        dest: Path,
        workers: int,
        drill: Drill,
        keep: bool = False,
        on_registered: Callable[[str], None] | None = None,
        datasets: list[tuple[str, str]] | None = None,
        feed_name: str | None = None,
    ) -> None:
        self.on_registered = on_registered
        self.broker = broker
        self.site = site
        self.timeline = timeline
        self.datasets = list(datasets or [])
        self.fetcher = _Fetcher("event", site, timeline, dest, workers, drill, keep)
        self.fetcher.on_failed = self._release
        #: The durable subscription's name: events published while the downloader is off the
        #: broker (its crash, a broker restart) are kept for it and delivered when it is back.
        self.feed_name = feed_name or f"rehearse-{uuid.uuid4().hex[:12]}"
        self.feed: DurableFeed | None = None
        self.reconnects = 0
        #: Chunks fetched by a catch-up listing rather than by their event.
        self.caught_up = 0
        self.claimed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Set while the chaos drill holds it down (a crash): events that still arrive are ignored.
        self._down = threading.Event()
        self._client: Any = None

    def _new_feed(self) -> DurableFeed:
        # A reader: the rehearsal only listens, so it uses the read-only login. A selector, so the
        # broker neither ships nor keeps every other event for us.
        return DurableFeed(
            self.broker,
            [self.broker.rucio_topic, self.broker.inlet_topic],
            name=self.feed_name,
            on_message=messaging.json_documents(self._on_doc, "the rehearsal's topics"),
            on_connected=self._on_connected,
            selector=f"event_type IN ('{TRANSFER_DONE}', '{FILE_REGISTERED}')",
            reconnect_initial=0.2,
            reconnect_max=2.0,
        )

    def start(self) -> None:
        """Subscribe (durably) to both topics, return once the broker confirmed the subscriptions,
        then keep the feed connected on its own thread; every (re)connect runs a catch-up."""
        self.feed = self._new_feed()
        self.feed.connect()
        self.feed.start()

    def _on_connected(self) -> None:
        if self.feed is not None and self.feed.connections > 1:
            self.reconnects += 1
            log.warning("event downloader: reconnected to the broker; catching up")
        self._after_connect()

    def _after_connect(self) -> None:
        threading.Thread(target=self._catch_up_twice, name="event-catch-up", daemon=True).start()

    def _catch_up_twice(self) -> None:
        for delay in (0.0, self.CATCH_UP_AGAIN):
            if self._stop.wait(delay):
                return
            while not self._stop.is_set():
                try:
                    self.catch_up()
                    break
                except Exception as exc:
                    # Rucio may be the part that is down: try again until it answers.
                    log.warning("event downloader: catch-up listing failed (%s); retrying", exc)
                    self._stop.wait(1.0)

    def catch_up(self) -> int:
        """List the datasets' replicas at site B and fetch the chunks not taken yet; returns how many."""
        from rucio.client import Client
        from rucio.common.exception import DataIdentifierNotFound

        if self._client is None:
            self._client = Client()
        found = 0
        for scope, name in self.datasets:
            try:
                replicas = list(
                    self._client.list_replicas([{"scope": scope, "name": name}], rse_expression=self.site.rse)
                )
            except DataIdentifierNotFound:
                continue
            now = time.time()
            for r in replicas:
                pfns = r.get("rses", {}).get(self.site.rse) or []
                chunk = self.timeline.get(r["name"])
                if not pfns or chunk is None or chunk.event_status is not None or not self._claim(r["name"]):
                    continue
                self.timeline.update(r["name"], event_seen=now)
                self.fetcher.submit(r["name"], pfns[0])
                found += 1
        self.caught_up += found
        if found:
            log.warning("event downloader: caught up %d chunk(s) missed while disconnected", found)
        return found

    def _claim(self, name: str) -> bool:
        with self._lock:
            if name in self.claimed:
                return False
            self.claimed.add(name)
            return True

    def _release(self, name: str) -> None:
        with self._lock:
            self.claimed.discard(name)

    # -- the chaos drill ------------------------------------------------------------------------
    def crash(self) -> None:
        """Drop off the broker, as a killed downloader would, and stay off until :meth:`restart`.

        Its durable subscription stays on the broker, which keeps what is published meanwhile.
        """
        self._down.set()
        if self.feed is not None:
            self.feed.stop()

    def restart(self) -> None:
        """Come back under the same name: the broker delivers what it kept; a catch-up runs too."""
        self._down.clear()
        feed = self._new_feed()
        feed.connect()
        self.feed = feed
        self.reconnects += 1
        feed.start()

    def ensure_connected(self) -> bool:
        """Kept for callers: the feed reconnects by itself; True while it is not connected."""
        return self.feed is None or not self.feed.connected

    def _on_doc(self, doc: dict[str, Any]) -> None:
        if self._down.is_set():
            return  # a crashed downloader handles nothing
        now = time.time()
        payload = doc.get("payload")
        if not isinstance(payload, dict):
            return
        etype = doc.get("event_type")
        name = str(payload.get("name", ""))
        if etype == FILE_REGISTERED:
            known = self.timeline.update(name, registered=rucio_time(payload.get("registered_at")), registered_seen=now)
            if known and self.on_registered is not None:
                self.on_registered(name)
        elif etype == TRANSFER_DONE and payload.get("dst-rse") == self.site.rse:
            known = self.timeline.update(
                name,
                request_created=rucio_time(payload.get("created_at")),
                submitted=rucio_time(payload.get("submitted_at")),
                transferred=rucio_time(payload.get("transferred_at")),
                available_b=rucio_time(doc.get("created_at")),
                event_seen=now,
            )
            if known and self._claim(name):
                pfn = payload.get("dst-url") or self.site.pfn(str(payload.get("scope")), name)
                self.fetcher.submit(name, str(pfn))

    def close(self) -> None:
        """Stop, and remove the durable subscription: nothing more is to be kept for this run."""
        self._stop.set()
        if self.feed is not None:
            try:
                self.feed.forget()
            except Exception as exc:
                log.warning("event downloader: could not remove its durable subscription %s: %s", self.feed_name, exc)
                self.feed.stop()
        self.fetcher.close()


class PollingDownloader:
    """The 2019 downloader: list the run dataset's replicas at site B every ``interval`` seconds."""

    def __init__(
        self,
        site: SiteB,
        timeline: Timeline,
        dest: Path,
        workers: int,
        drill: Drill,
        datasets: list[tuple[str, str]],
        interval: float,
        keep: bool = False,
    ) -> None:
        from rucio.client import Client

        self.client = Client()
        self.site = site
        self.timeline = timeline
        self.datasets = datasets
        self.interval = interval
        self.fetcher = _Fetcher("poll", site, timeline, dest, workers, drill, keep)
        self.listings = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="polling-downloader", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def poll_once(self) -> int:
        from rucio.common.exception import DataIdentifierNotFound

        found = 0
        for scope, name in self.datasets:
            try:
                replicas = list(
                    self.client.list_replicas([{"scope": scope, "name": name}], rse_expression=self.site.rse)
                )
            except DataIdentifierNotFound:
                continue  # the run's first chunk is not registered yet
            self.listings += 1
            now = time.time()
            for r in replicas:
                pfns = r.get("rses", {}).get(self.site.rse) or []
                chunk = self.timeline.get(r["name"])
                if not pfns or chunk is None:
                    continue
                if chunk.poll_seen is None or (chunk.poll_status is None and chunk.poll_error is not None):
                    # New, or its last fetch failed: (re)fetch it.
                    self.timeline.update(r["name"], first_only=False, poll_error=None)
                    self.timeline.update(r["name"], poll_seen=now)
                    self.fetcher.submit(r["name"], pfns[0])
                    found += 1
        return found

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception as exc:
                # The next listing tries again: a polling downloader rides out a server restart.
                log.warning("polling listing failed: %s", exc)
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.fetcher.close()
