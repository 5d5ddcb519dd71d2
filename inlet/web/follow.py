"""``GET /follow?select=EXPR``: the stream of ``inlet follow`` over HTTP, as Server-Sent Events.

One event per file that became available (``id: <seq>``, ``event: file``, ``data:`` the JSON of
:meth:`inlet.follow.source.FollowedFile.as_dict`): first the history from the start point, then
live files, in catalogue order. A client that reconnects with ``Last-Event-ID`` (every
EventSource does; curl users pass the header or ``last_event_id=``) resumes right after it.

Who may follow: any Rucio account, checked by Rucio (a web session cookie, an
``X-Rucio-Auth-Token`` header, or HTTP basic auth with the account's userpass identity, so that
``curl -u`` works). What it sees is decided twice, and both must agree: the web role from the
account's attributes (:mod:`inlet.web.access`: outsiders' queries never return a run under
embargo), and, per file, :func:`rucio_inlet.readers.may_read`, the decision Rucio's policy takes
for signed URLs to private storage, fed with the account's attributes as Rucio stores them.

Cost: one broker subscription per web process (:class:`inlet.web.live.ChangeFeed`) wakes every
stream; a woken stream runs one indexed catalogue query (``seq > last sent``). Nothing is queued
per client beyond one batch: a client that reads slowly holds its stream at the socket (TCP
backpressure), and one that stops reading is dropped after :data:`SEND_TIMEOUT` seconds and
resumes from its last id when it reconnects, so a slow client costs memory for one batch and
never loses a file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from rucio_inlet import readers
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from inlet.errors import InletError
from inlet.follow.source import Cursor, FollowedFile, GapGuard, last_seq, parse_since, seq_at
from inlet.select import Selection, SelectSyntaxError, parse_selection
from inlet.select.resolve import build_statement
from inlet.web import metrics
from inlet.web.access import Role, Viewer, role_of
from inlet.web.rucio_rest import RucioRefused, RucioUnreachable

log = logging.getLogger("inlet.web")

#: Longest ``select`` accepted over HTTP (the grammar's own limit is far above what a URL carries).
MAX_SELECT = 4000
#: Files per catalogue query; also the most a stream holds in memory at once.
BATCH = 200
#: Seconds a stream waits for a wake-up before it looks again anyway (a missed or absent broker).
IDLE_CHECK = 15.0
#: Seconds one event may take to reach a client before the stream is dropped (it resumes from its id).
SEND_TIMEOUT = 60.0
#: Seconds a checked credential is remembered (a reconnect storm must not become a Rucio login storm).
AUTH_TTL = 60.0
#: Catalogue queries of all streams at once (the engine's pool is shared with the pages).
QUERY_SLOTS = 8
_RSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadFollow(Exception):
    """A parameter of /follow that cannot be used; ``line`` says what is wrong and how to fix it."""

    def __init__(self, line: str, status: int = 400) -> None:
        super().__init__(line)
        self.line, self.status = line, status


@dataclass(frozen=True)
class FollowRequest:
    """What a client asked for: the selection, where, and from which point of the stream."""

    text: str
    selection: Selection
    rse: str | None
    resume: Cursor | None  # from Last-Event-ID: resume right after it
    from_start: bool = False
    since: dt.datetime | None = None


def caret_line(exc: SelectSyntaxError) -> str:
    """A selection error on one line, the spot marked with ``^`` inside the (shortened) text."""
    text, pos = _CONTROL.sub(" ", exc.text), max(0, exc.pos)
    lo, hi = max(0, pos - 40), pos + 40
    near = ("..." if lo else "") + text[lo:pos] + "^" + text[pos:hi] + ("..." if hi < len(text) else "")
    return f"bad select: {exc.message} at column {pos + 1}: {near} (see `inlet select -h`)"


def parse_request(query: Mapping[str, str], headers: Mapping[str, str]) -> FollowRequest:
    """The request's parameters, or :class:`BadFollow` with one line saying what to fix."""
    text = query.get("select")
    if text is None or not text.strip():
        raise BadFollow("give a selection: /follow?select=EXPR (e.g. select=*: or select=raw:run_number>5000)")
    if len(text) > MAX_SELECT:
        raise BadFollow(f"select is {len(text)} characters long; at most {MAX_SELECT} over HTTP", 414)
    try:
        selection = parse_selection(text)
        build_statement(selection, text)  # unknown keys and values that cannot be compared fail here
    except SelectSyntaxError as exc:
        raise BadFollow(caret_line(exc)) from None
    rse = query.get("rse") or None
    if rse is not None and not _RSE.fullmatch(rse):
        raise BadFollow(f"rse {rse[:40]!r} is not an RSE name (letters, digits, '_', '-', '.')")
    last = headers.get("last-event-id") or query.get("last_event_id")
    if last:
        try:
            return FollowRequest(text, selection, rse, Cursor.parse(last))
        except InletError as exc:
            raise BadFollow(f"Last-Event-ID: {exc.problem}; {exc.fix or 'pass an id this stream sent'}") from None
    from_start = query.get("from_start", "")
    if from_start not in ("", "0", "1", "true", "false"):
        raise BadFollow(f"from_start must be 1 or 0, not {from_start[:20]!r}")
    since_text = query.get("since")
    if since_text and from_start in ("1", "true"):
        raise BadFollow("give since=TIME or from_start=1, not both")
    since = None
    if since_text:
        try:
            since = parse_since(since_text)
        except InletError as exc:
            raise BadFollow(f"since: {exc.problem.removeprefix('--since ')}; {exc.fix}") from None
    return FollowRequest(text, selection, rse, None, from_start=from_start in ("1", "true"), since=since)


# -- who is following -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Follower:
    """A checked account, its web role and the Rucio attributes it holds."""

    account: str
    role: Role
    attributes: frozenset[str]

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.account, self.role)

    def may_read(self, f: FollowedFile, now: dt.datetime) -> bool:
        """The policy package's decision for this file (rucio_inlet.readers), never a copy of it."""
        return readers.may_read(self.account, self.attributes.__contains__, f.embargo_until, now)


class Logins:
    """Credentials checked by Rucio, remembered for :data:`AUTH_TTL` seconds under their hash."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._seen: dict[str, tuple[float, Follower]] = {}
        self._checking: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: str, check: Callable[[], Follower]) -> Follower:
        digest = hashlib.sha256(key.encode()).hexdigest()
        with self._lock:
            one = self._checking.setdefault(digest, threading.Lock())
        # One check per credential at a time: 100 clients reconnecting with the same login
        # after a restart cost Rucio one login, not 100.
        with one:
            now = time.monotonic()
            with self._lock:
                hit = self._seen.get(digest)
                if hit is not None and hit[0] > now:
                    return hit[1]
            try:
                follower = check()  # a Rucio round trip, outside the shared lock
            finally:
                with self._lock:
                    self._checking.pop(digest, None)
            with self._lock:
                if len(self._seen) >= self.max_entries:
                    self._seen = {k: v for k, v in self._seen.items() if v[0] > now}
                    if len(self._seen) >= self.max_entries:
                        self._seen.clear()
                self._seen[digest] = (now + AUTH_TTL, follower)
            return follower


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user else None


def authenticate(web: Any, request: Request) -> Follower | None:
    """The follower behind a session cookie, an X-Rucio-Auth-Token or basic auth; None: no credentials.

    Raises RucioRefused for credentials Rucio does not accept, RucioUnreachable if it does not answer.
    Basic auth logs in ``user`` as both account and userpass username, unless an ``X-Rucio-Account``
    header names another account for that identity.
    """
    logins: Logins = web.logins

    def follower(account: str) -> Follower:
        attrs = web.rucio.account_attributes(account)
        return Follower(account, role_of(account, attrs, web.settings.web), frozenset(attrs))

    session_viewer = web.viewer(request) if "session" in request.scope else None
    token = request.headers.get("x-rucio-auth-token", "").strip()
    basic = _basic(request.headers.get("authorization", ""))
    if token:
        return logins.get("token\0" + token, lambda: follower(web.rucio.whoami(token)))
    if basic is not None:
        user, password = basic
        account = request.headers.get("x-rucio-account", "").strip() or user

        def login() -> Follower:
            web.rucio.login_userpass(account, user, password)
            return follower(account)

        return logins.get(f"basic\0{account}\0{user}\0{password}", login)
    if session_viewer is not None:
        return logins.get("session\0" + session_viewer.account, lambda: follower(session_viewer.account))
    return None


class KnownRSEs:
    """The RSE names Rucio knows, asked at most once a minute."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._names: frozenset[str] = frozenset()
        self._at = -1e9
        self._lock = threading.Lock()

    def names(self, fetch: Callable[[], list[str]]) -> frozenset[str]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                self._names, self._at = frozenset(fetch()), time.monotonic()
            return self._names


# -- the stream -------------------------------------------------------------------------------------
def start_cursor(session: Any, req: FollowRequest) -> Cursor:
    """Where the stream starts: right after Last-Event-ID, at the start, at ``since``, or now (live only)."""
    if req.resume is not None:
        return req.resume
    if req.from_start:
        return Cursor(0)
    if req.since is not None:
        return Cursor(seq_at(session, req.since))
    return Cursor(last_seq(session))


def position(cursor: Cursor) -> str:
    """The cursor as an event id, with the ids sent right above the floor folded into it.

    Sent ids are settled, so a floor followed by a run of them is the same position as a floor
    at the run's end: the id is the plain seq whenever no gap is open (the usual case)."""
    floor, sent = cursor.floor, set(cursor.delivered)
    while floor + 1 in sent:
        floor += 1
        sent.discard(floor)
    return Cursor(floor, frozenset(sent)).token()


def event_of(f: FollowedFile, position: str) -> dict[str, str]:
    return {"id": position, "event": "file", "data": json.dumps(f.as_dict(), separators=(",", ":"))}


async def file_events(web: Any, follower: Follower, req: FollowRequest, start: Cursor) -> AsyncIterator[dict[str, str]]:
    """History from ``start`` on, then live files, each one the follower may read, in seq order.

    Each event's id is the stream position after it (:meth:`Cursor.token`): the file's seq, or,
    while an earlier id is still uncommitted (the gap rule of :mod:`inlet.follow.source`), the
    settled floor plus the ids already sent, so a resume neither loses the late file nor repeats
    the sent ones.
    """
    limiter: anyio.CapacityLimiter = web.follow_slots
    guard = GapGuard(start)

    def read() -> list[FollowedFile]:
        with web.catalog.session() as s:
            return guard.poll(s, req.selection, rse=req.rse, limit=BATCH, public_at=follower.viewer.public_at())

    metrics.FOLLOWERS.inc()
    try:
        with web.feed.waker() as wake:
            first = True
            while not web.feed.stopping:
                # The feed's mark holds the newest availability id it saw: a wake-up for anything
                # else (a run changed state) costs this stream no query.
                newest = web.feed.mark[2] if web.feed.mark is not None else None
                woken, first_pass = wake.is_set(), first
                wake.clear()
                first = False
                nothing_new = newest is not None and newest <= guard.high_water and not guard.waiting
                if woken and not first_pass and nothing_new:
                    await _wait(wake, IDLE_CHECK)
                    continue
                looked = guard.high_water
                try:
                    files = await anyio.to_thread.run_sync(read, limiter=limiter)
                except Exception as exc:  # a catalogue hiccup: say so, look again at the next wake-up
                    log.warning("follow %s: catalogue read failed: %s", follower.account, exc)
                    files = []
                now = dt.datetime.now(dt.UTC)
                for f in files:
                    guard.mark(f.seq)  # handled, sent or not: the position moves past it either way
                    if follower.may_read(f, now):
                        metrics.FOLLOW_FILES.inc()
                        yield event_of(f, position(guard.cursor))
                # More history waiting (a full batch, or a window of ids read short of the newest):
                # read on without waiting to be woken.
                behind = newest is not None and looked < guard.high_water < newest
                if len(files) >= BATCH or behind:
                    continue
                await _wait(wake, min(IDLE_CHECK, guard.timeout) if guard.waiting else IDLE_CHECK)
    finally:
        metrics.FOLLOWERS.dec()


async def _wait(wake: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)


async def follow_view(request: Request) -> Response:
    web = request.app.state.web
    try:
        req = parse_request(request.query_params, request.headers)
    except BadFollow as exc:
        metrics.REQUESTS.labels("follow", str(exc.status)).inc()
        return PlainTextResponse(exc.line + "\n", status_code=exc.status)

    def check() -> tuple[Follower | None, Cursor]:
        follower = authenticate(web, request)
        if follower is None:
            return None, Cursor(0)
        if req.rse is not None and req.rse not in web.known_rses.names(web.rucio.rse_names):
            raise BadFollow(f"unknown RSE {req.rse!r}: `rucio rse list` shows the RSEs there are", 404)
        with web.catalog.session() as s:
            return follower, start_cursor(s, req)

    try:
        follower, start = await anyio.to_thread.run_sync(check)
    except BadFollow as exc:
        metrics.REQUESTS.labels("follow", str(exc.status)).inc()
        return PlainTextResponse(exc.line + "\n", status_code=exc.status)
    except RucioRefused as exc:
        metrics.REQUESTS.labels("follow", "401").inc()
        return _unauthorized(f"Rucio refused the credentials: {exc.problem}")
    except (RucioUnreachable, InletError) as exc:
        metrics.REQUESTS.labels("follow", "503").inc()
        return PlainTextResponse(f"cannot check the login now: {exc.problem}\n", status_code=503)
    if follower is None:
        metrics.REQUESTS.labels("follow", "401").inc()
        return _unauthorized("log in: curl -u ACCOUNT:PASSWORD, or -H 'X-Rucio-Auth-Token: TOKEN'")
    metrics.REQUESTS.labels("follow", "200").inc()
    log.info(
        "%s (%s) follows %r on %s after %s",
        follower.account,
        follower.role.value,
        req.text,
        req.rse or "any RSE",
        start.token(),
    )
    return EventSourceResponse(
        file_events(web, follower, req, start),
        ping=15,
        send_timeout=SEND_TIMEOUT,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _unauthorized(line: str) -> Response:
    return PlainTextResponse(line + "\n", status_code=401, headers={"WWW-Authenticate": 'Basic realm="inlet"'})
