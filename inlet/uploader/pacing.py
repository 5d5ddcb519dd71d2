"""Pacing shared by every worker: a token bucket and per-RSE write slots, both in Redis.

The bucket holds file tokens and byte tokens; a batch takes both at once in one Lua script
(atomic on the Redis server, timed by the server's clock, so workers on several hosts share
one budget without clock agreement). A batch that finds the bucket short waits, polling; it
is never dropped: that is the backpressure. Every grant is appended to a capped log, which
`inlet uploader status` and the tests read to see who took what.

Redis is also the Celery broker, so while it is down (a restart) no batch can move anyway:
pacing calls wait for it to come back (:func:`through_outage`) instead of failing the batch,
and the statistics counters are best effort.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

log = logging.getLogger(__name__)

PREFIX = "inlet:uploader:"
BUCKET = PREFIX + "bucket"
GRANTS = PREFIX + "grants"
WAITING = PREFIX + "waiting"
ERRORS = PREFIX + "errors"
REGISTERED = PREFIX + "registered"
GRANT_LOG_LEN = 10_000

#: What a Redis restart looks like to redis-py: refused or reset connections, timeouts.
OUTAGE = (redis.ConnectionError, redis.TimeoutError)
T = TypeVar("T")


def through_outage(call: Callable[[], T], what: str, max_pause: float = 2.0) -> T:
    """``call()``, waiting through a Redis outage however long it lasts (redis-py reconnects by itself).

    A batch blocked here holds its task unacknowledged, so even a worker that dies meanwhile
    loses nothing: the visibility timeout hands the task on.
    """
    pause = 0.1
    down_since: float | None = None
    while True:
        try:
            value = call()
        except OUTAGE as exc:
            if down_since is None:
                down_since = time.monotonic()
                log.warning("Redis unreachable while %s (%s); waiting for it to come back", what, exc)
            time.sleep(pause)
            pause = min(max_pause, pause * 2)
            continue
        if down_since is not None:
            log.warning("Redis is back after %.1f s; %s goes on", time.monotonic() - down_since, what)
        return value


def bump(client: redis.Redis, key: str, n: int = 1) -> None:
    """Add to a statistics counter; lost during a Redis outage (a gap in statistics, not in data)."""
    if n <= 0:
        return
    try:
        client.incrby(key, n)
    except OUTAGE as exc:
        log.warning("Redis unreachable: counter %s not incremented by %d (%s)", key, n, exc)


# KEYS[1] bucket hash. ARGV: file rate, byte rate, file burst, byte burst, files wanted, bytes wanted.
# A rate of 0 means that dimension is unlimited. Returns the seconds to wait (0: granted).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local fr, br = tonumber(ARGV[1]), tonumber(ARGV[2])
local fb, bb = tonumber(ARGV[3]), tonumber(ARGV[4])
local nf, nb = tonumber(ARGV[5]), tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'files', 'bytes', 'ts')
local files = tonumber(h[1]) or fb
local bytes = tonumber(h[2]) or bb
local ts = tonumber(h[3]) or now
local dt = math.max(0, now - ts)
files = math.min(fb, files + dt * fr)
bytes = math.min(bb, bytes + dt * br)
local wait = 0
if fr > 0 and files < nf then wait = math.max(wait, (nf - files) / fr) end
if br > 0 and bytes < nb then wait = math.max(wait, (nb - bytes) / br) end
if wait == 0 then
  if fr > 0 then files = files - nf end
  if br > 0 then bytes = bytes - nb end
end
redis.call('HSET', KEYS[1], 'files', tostring(files), 'bytes', tostring(bytes), 'ts', tostring(now))
return tostring(wait)
"""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TokenBucket:
    """Global files/s and bytes/s budget; ``take`` blocks until the batch may go."""

    def __init__(
        self,
        client: redis.Redis,
        files_per_second: float,
        bytes_per_second: float,
        burst_files: float,
        burst_bytes: float,
        *,
        key: str = BUCKET,
        max_poll: float = 1.0,
    ) -> None:
        self.r = client
        self.rates = (files_per_second, bytes_per_second)
        self.burst = (burst_files, burst_bytes)
        self.key = key
        self.max_poll = max_poll
        self._take = client.register_script(_TAKE)

    @property
    def unlimited(self) -> bool:
        return self.rates == (0.0, 0.0)

    def try_take(self, files: int, nbytes: int) -> float:
        """Take the tokens if there are enough; else the seconds to wait (nothing taken)."""
        if self.unlimited:
            return 0.0
        # A batch larger than the bucket could never be granted whole: ask for the bucket's depth.
        nf = min(float(files), self.burst[0])
        nb = min(float(nbytes), self.burst[1])
        args = [*self.rates, *self.burst, nf, nb]
        return float(through_outage(lambda: self._take(keys=[self.key], args=args), "waiting for pacing tokens"))

    def take(self, files: int, nbytes: int, who: str | None = None) -> float:
        """Block until granted (never gives up: backpressure); returns the seconds waited."""
        start = time.monotonic()
        waiting = False
        try:
            while True:
                wait = self.try_take(files, nbytes)
                if wait <= 0:
                    break
                if not waiting:
                    through_outage(lambda: self.r.incr(WAITING), "counting a batch waiting for tokens")
                    waiting = True
                time.sleep(min(wait, self.max_poll))
        finally:
            if waiting:
                through_outage(lambda: self.r.decr(WAITING), "counting a batch waiting for tokens")
        waited = time.monotonic() - start
        entry = {"who": who or worker_id(), "files": files, "bytes": nbytes, "at": time.time(), "waited": waited}

        def log_grant() -> None:
            pipe = self.r.pipeline()
            pipe.rpush(GRANTS, json.dumps(entry))
            pipe.ltrim(GRANTS, -GRANT_LOG_LEN, -1)
            pipe.execute()  # type: ignore[no-untyped-call]

        through_outage(log_grant, "logging a pacing grant")
        return waited

    def add(self, files: float = 0.0, nbytes: float = 0.0) -> None:
        """Put tokens into the bucket by hand (an operator's nudge; the tests' way to open the gate)."""
        self.r.hincrbyfloat(self.key, "files", files)
        self.r.hincrbyfloat(self.key, "bytes", nbytes)


def grants(client: redis.Redis) -> list[dict[str, Any]]:
    raw: Any = client.lrange(GRANTS, 0, -1)
    return [json.loads(x) for x in raw]


def counter(client: redis.Redis, key: str) -> int:
    """An integer kept in Redis (0 when unset); the sync client's answers are typed loosely."""
    value: Any = client.get(key)
    return int(value or 0)


class RseSlots:
    """At most N concurrent writers per RSE across all workers, as leases in a sorted set.

    A lease expires after ``lease`` seconds, so a killed worker does not hold a slot forever.
    """

    def __init__(self, client: redis.Redis, limits: dict[str, int], lease: float = 600.0, poll: float = 0.05) -> None:
        self.r = client
        self.limits = limits
        self.lease = lease
        self.poll = poll

    def _try(self, rse: str, token: str, limit: int) -> bool:
        key = f"{PREFIX}slots:{rse}"
        now = time.time()
        pipe = self.r.pipeline()
        pipe.zremrangebyscore(key, "-inf", now - self.lease)
        pipe.zadd(key, {token: now})
        pipe.zrank(key, token)
        _, _, rank = pipe.execute()  # type: ignore[no-untyped-call]
        if rank is not None and int(rank) < limit:
            return True
        self.r.zrem(key, token)
        return False

    @contextmanager
    def hold(self, rse: str) -> Iterator[None]:
        limit = self.limits.get(rse)
        if not limit:
            yield
            return
        token = uuid.uuid4().hex
        while not through_outage(lambda: self._try(rse, token, limit), f"taking a write slot on {rse}"):
            time.sleep(self.poll)
        try:
            yield
        finally:
            try:
                self.r.zrem(f"{PREFIX}slots:{rse}", token)
            except OUTAGE as exc:
                # The lease runs out by itself; waiting here would hold up a finished batch.
                log.warning("Redis unreachable: write slot on %s left to expire (%s)", rse, exc)

    def in_use(self, rse: str) -> int:
        key = f"{PREFIX}slots:{rse}"
        self.r.zremrangebyscore(key, "-inf", time.time() - self.lease)
        n: Any = self.r.zcard(key)
        return int(n)
