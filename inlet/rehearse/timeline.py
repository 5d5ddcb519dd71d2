"""Every chunk's timestamps, and the hops between them.

All times are Unix seconds (float). Rucio's own timestamps (when the transfer request was
made, submitted and copied, and ``available_b``: when the conveyor's poller saw the copy done
and queued the event) come from the ``transfer-done`` event and are naive UTC; they are
converted here. Everything runs on one host, so one clock measures every hop.
"""

from __future__ import annotations

import datetime as dt
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


@dataclass
class Timeline:
    """The rehearsal's shared record; downloaders and event handlers update it from their threads."""

    chunks: dict[str, ChunkTimes] = field(default_factory=dict)
    #: How many chunks both downloaders are done with; kept as chunks settle, so that waiting for
    #: the end costs nothing per update (the full rehearsal has 14,400 chunks).
    settled_count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    changed: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self._lock)

    def add(self, c: ChunkTimes) -> None:
        with self._lock:
            self.chunks[c.name] = c
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
            for key, value in values.items():
                if not first_only or getattr(c, key) is None:
                    setattr(c, key, value)
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
        """``fn(chunks)`` under the lock, on the live records (no copies: cheap for a progress line)."""
        with self._lock:
            return fn(self.chunks.values())


def settled(c: ChunkTimes) -> bool:
    """Both downloaders are done with the chunk, one way or the other."""
    return c.event_status is not None and c.poll_status is not None
