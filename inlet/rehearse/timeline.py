"""Every chunk's timestamps, and the hops between them.

All times are Unix seconds (float). Rucio's own timestamps (when the transfer request was
made, submitted and copied, and ``available_b``: when the conveyor's poller saw the copy done
and queued the event) come from the ``transfer-done`` event and are naive UTC; they are
converted here. Everything runs on one host, so one clock measures every hop.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

#: (hop, from field, to field, what it covers). The order is the data's path; ``a|b`` is the later of two.
EVENT_HOPS: tuple[tuple[str, str, str, str], ...] = (
    ("upload", "closed", "registered", "DAQ closed the file → registered and AVAILABLE at site A (uploader)"),
    (
        "rule→request",
        "registered",
        "registered|request_created",
        "registered → transfer request (judge-evaluator; 0 with per-file rules, made while registering)",
    ),
    ("submit", "registered|request_created", "submitted", "conveyor submitter picks the request"),
    ("copy", "submitted", "transferred", "gfal2 copy and checksum at site B"),
    ("poll", "transferred", "available_b", "conveyor poller sees the copy done → transfer-done queued"),
    ("registration→replica at B", "registered", "available_b", "the replication, all of the above (transfer done)"),
    ("event delivery", "available_b", "event_seen", "hermes → ActiveMQ → downloader"),
    ("download (events)", "event_seen", "event_done", "fetch from site B and verify adler32"),
    ("end to end (events)", "closed", "event_done", "DAQ closed → verified copy downloaded at B"),
)
POLL_HOPS: tuple[tuple[str, str, str, str], ...] = (
    (
        "discovery (polling)",
        "available_b",
        "poll_seen",
        "transfer done at B → seen by the next listing (after the finisher marks the replica AVAILABLE)",
    ),
    ("download (polling)", "poll_seen", "poll_done", "fetch from site B and verify adler32"),
    ("end to end (polling)", "closed", "poll_done", "DAQ closed → verified copy downloaded at B"),
)
HOPS = EVENT_HOPS + POLL_HOPS

DOWNLOADED = "downloaded"
CORRUPTED = "corrupted"


def rucio_time(value: Any) -> float | None:
    """A Rucio timestamp (naive UTC string or datetime) as Unix seconds; None if absent or unreadable."""
    if value in (None, "", "None"):
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


@dataclass
class ChunkTimes:
    index: int
    name: str
    size: int
    adler32: str
    closed: float
    drill: bool = False
    registered: float | None = None
    registered_seen: float | None = None
    request_created: float | None = None
    submitted: float | None = None
    transferred: float | None = None
    available_b: float | None = None
    event_seen: float | None = None
    event_done: float | None = None
    event_status: str | None = None
    event_error: str | None = None
    poll_seen: float | None = None
    poll_done: float | None = None
    poll_status: str | None = None
    poll_error: str | None = None

    def at(self, spec: str) -> float | None:
        """A field's time; ``a|b`` is the later of two (None if any is missing)."""
        values = [getattr(self, f) for f in spec.split("|")]
        if any(v is None for v in values):
            return None
        return float(max(values))

    def hop(self, start: str, end: str) -> float | None:
        a, b = self.at(start), self.at(end)
        if a is None or b is None:
            return None
        return b - a


#: The progress counters, in the order a progress line shows them.
MARK_KEYS = (
    "sent",
    "uploaded",
    "replicated",
    "downloaded_events",
    "downloaded_polling",
    "corrupted_events",
    "corrupted_polling",
    "lost_events",
    "lost_polling",
    "drilled",
)


def marks(c: ChunkTimes) -> dict[str, int]:
    """What one chunk adds to the progress counters (each 0 or 1)."""
    ev_ok, ev_bad = c.event_status == DOWNLOADED, c.event_status == CORRUPTED
    po_ok, po_bad = c.poll_status == DOWNLOADED, c.poll_status == CORRUPTED
    return {
        "sent": 1,
        "uploaded": int(c.registered is not None),
        "replicated": int(c.available_b is not None or c.poll_seen is not None),
        "downloaded_events": int(ev_ok),
        "downloaded_polling": int(po_ok),
        "corrupted_events": int(ev_bad),
        "corrupted_polling": int(po_bad),
        "lost_events": int(not ev_ok and not ev_bad),
        "lost_polling": int(not po_ok and not po_bad),
        "drilled": int(c.drill),
    }


@dataclass
class Timeline:
    """The rehearsal's shared record; downloaders and event handlers update it from their threads."""

    chunks: dict[str, ChunkTimes] = field(default_factory=dict)
    #: How many chunks both downloaders are done with; kept as chunks settle, so that waiting for
    #: the end costs nothing per update (the full rehearsal has 14,400 chunks).
    settled_count: int = 0
    #: The progress counters (:func:`marks` summed), kept as chunks change for the same reason:
    #: counting 14,400 chunks twice a second held the lock and the driver's GIL for tens of ms,
    #: a cost that grew with the run and delayed the downloaders' threads in the same process.
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MARK_KEYS, 0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    changed: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self._lock)

    def add(self, c: ChunkTimes) -> None:
        with self._lock:
            old = self.chunks.get(c.name)
            if old is not None:
                self._count(old, -1)
                self.settled_count -= settled(old)
            self.chunks[c.name] = c
            self._count(c, 1)
            self.settled_count += settled(c)
            self.changed.notify_all()

    def get(self, name: str) -> ChunkTimes | None:
        with self._lock:
            return self.chunks.get(name)

    def update(self, name: str, *, first_only: bool = True, **values: Any) -> bool:
        """Set fields of chunk ``name``; with ``first_only`` a field already set keeps its first value
        (a repeated event must not move a timestamp). False for a name not in this rehearsal."""
        return self.record(name, values, first_only)

    def record(self, name: str, values: dict[str, Any], first_only: bool = True) -> bool:
        with self._lock:
            c = self.chunks.get(name)
            if c is None:
                return False
            was = settled(c)
            self._count(c, -1)
            for key, value in values.items():
                if not first_only or getattr(c, key) is None:
                    setattr(c, key, value)
            self._count(c, 1)
            self.settled_count += settled(c) - was
            self.changed.notify_all()
            return True

    def snapshot(self) -> list[ChunkTimes]:
        with self._lock:
            return [ChunkTimes(**asdict(c)) for c in sorted(self.chunks.values(), key=lambda c: c.index)]

    def wait_settled(self, timeout: float) -> bool:
        """Wait until both downloaders are done with every chunk, or the timeout."""
        with self._lock:
            return self.changed.wait_for(lambda: self.settled_count == len(self.chunks), timeout)

    def tally(self, fn: Any) -> Any:
        """``fn(chunks)`` under the lock, on the live records (no copies)."""
        with self._lock:
            return fn(self.chunks.values())

    def _count(self, c: ChunkTimes, sign: int) -> None:
        for key, n in marks(c).items():
            self.totals[key] += sign * n

    def progress(self, last: int) -> tuple[dict[str, int], list[ChunkTimes]]:
        """The counters and copies of the ``last`` chunks added: a progress line's cost stays the
        same however long the run."""
        with self._lock:
            recent = list(itertools.islice(reversed(self.chunks.values()), last))
            return dict(self.totals), [ChunkTimes(**asdict(c)) for c in reversed(recent)]


def settled(c: ChunkTimes) -> bool:
    """Both downloaders are done with the chunk, one way or the other."""
    return c.event_status is not None and c.poll_status is not None
