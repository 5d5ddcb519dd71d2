"""What a follower reads: the catalogue's availability rows after a position, and the gap rule.

The stream
----------
The truth is the run catalogue's ``file_availability`` table: the listener (``inlet listen``)
writes one row per file and RSE when Rucio's (or inlet's) events say the file is there, first
time wins. Its autoincrement ``id`` is the stream position (``seq``): a follower that has
handled everything up to ``seq`` asks for the rows after it (:func:`files_after`). Broker events
only wake a follower up; what it yields always comes from here, so an event lost, duplicated or
forged cannot make it skip or repeat a file, and a restart resumes from a number.

The gap rule
------------
With several listeners (competing consumers), ids are *allocated* in one order and *committed*
in another: a reader may see row 12 before row 11 commits. Advancing the cursor to 12 would lose
11 for good. :class:`GapGuard` therefore stops at the first missing id and waits; a gap that is
still there after ``gap_timeout`` seconds is a rolled-back insert (or a deleted row) and is
skipped. The CLI follower and each SSE connection keep one each.

Kept pure (a session in, rows out) so that ``inlet web``'s ``/follow`` imports it without
anything of the broker.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile
from rucio_inlet.catalog_query import QueryError, compile_node
from rucio_inlet.embargo import embargo_passed
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from inlet.errors import InletError
from inlet.select.grammar import Selection, SelectSyntaxError
from inlet.select.resolve import tier_clause

#: Seconds after which a missing id is taken for a rolled-back insert (see the module doc).
GAP_TIMEOUT = 5.0


@dataclass(frozen=True)
class FollowedFile:
    """One file that became available on one RSE, at stream position ``seq``."""

    seq: int
    scope: str
    name: str
    rse: str
    size: int
    adler32: str | None
    experiment: str
    run_number: int
    available_at: dt.datetime
    embargo_until: dt.datetime | None

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: times as ISO 8601 UTC strings."""
        d = asdict(self)
        d["available_at"] = _iso(self.available_at)
        d["embargo_until"] = None if self.embargo_until is None else _iso(self.embargo_until)
        return {"did": self.did, **d}


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def files_after(
    session: Session,
    selection: Selection,
    *,
    rse: str | None,
    after: int,
    limit: int,
    public_at: dt.datetime | None = None,
    upto: int | None = None,
) -> list[FollowedFile]:
    """Availability rows with ``seq > after`` of files matching ``selection``, in ``seq`` order.

    ``rse``: only that RSE's rows (``None``: every RSE; a file on two RSEs is then two items).
    ``public_at``: if given, files of runs still under embargo at that instant are left out
    (compared as :func:`rucio_inlet.embargo.embargo_passed`: a run without an embargo is public).
    ``upto``: if given, only rows with ``seq <= upto``.
    A selection that cannot be evaluated raises :class:`SelectSyntaxError` (column 1: the text
    is not known here).
    """
    fa = aliased(FileAvailability)  # the selection's own `rse` test uses the plain class: no correlation
    stmt = (
        select(
            fa.id,
            fa.rse,
            fa.available_at,
            RunFile.scope,
            RunFile.name,
            RunFile.size,
            RunFile.adler32,
            Run.experiment,
            Run.run_number,
            Run.embargo_until,
        )
        .join(RunFile, RunFile.id == fa.file_id)
        .join(Run, Run.id == RunFile.run_id)
        .where(fa.id > after)
        .order_by(fa.id)
        .limit(limit)
    )
    if upto is not None:
        stmt = stmt.where(fa.id <= upto)
    if rse is not None:
        stmt = stmt.where(fa.rse == rse)
    tier = tier_clause(selection.tier)
    if tier is not None:
        stmt = stmt.where(tier)
    if selection.condition is not None:
        try:
            stmt = stmt.where(compile_node(selection.condition, "file"))
        except QueryError as exc:
            raise SelectSyntaxError(str(exc), "", exc.pos) from exc
    if public_at is not None:
        # Coarse filter in SQL (no embargo, or one already passed), exact test below as Rucio's.
        stmt = stmt.where(or_(Run.embargo_until.is_(None), Run.embargo_until <= public_at))
    files = [
        FollowedFile(
            seq=r.id,
            scope=r.scope,
            name=r.name,
            rse=r.rse,
            size=r.size,
            adler32=r.adler32,
            experiment=r.experiment,
            run_number=r.run_number,
            available_at=r.available_at,
            embargo_until=r.embargo_until,
        )
        for r in session.execute(stmt).all()
    ]
    if public_at is not None:
        files = [f for f in files if f.embargo_until is None or embargo_passed(f.embargo_until, public_at)]
    return files


def ids_between(session: Session, low: int, high: int) -> list[int]:
    """Every committed availability id in ``(low, high]`` (any file, any RSE): gaps show here."""
    return list(
        session.scalars(
            select(FileAvailability.id)
            .where(FileAvailability.id > low, FileAvailability.id <= high)
            .order_by(FileAvailability.id)
        )
    )


def last_seq(session: Session) -> int:
    """The highest position now (0 for an empty table): where a follower that starts "now" begins."""
    return int(session.scalar(select(func.coalesce(func.max(FileAvailability.id), 0))) or 0)


def seq_at(session: Session, since: dt.datetime) -> int:
    """The position just before the first row that became available at or after ``since``.

    Rows are not strictly in ``available_at`` order (events come late); starting before the
    first row at or after ``since`` may repeat a few older rows, never lose a newer one.
    """
    if since.tzinfo is None:
        raise InletError(f"--since {since.isoformat()} has no time zone", "add Z or +00:00, e.g. 2026-11-29T20:00:00Z")
    first = session.scalar(select(func.min(FileAvailability.id)).where(FileAvailability.available_at >= since))
    return last_seq(session) if first is None else int(first) - 1


def parse_since(text: str) -> dt.datetime:
    """``--since``: ISO 8601 (a date, or a date and time; no zone means UTC), or a duration back
    from now: ``90s``, ``15m``, ``2h``, ``3d``. A one-line :class:`InletError` otherwise."""
    raw = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if raw[:-1].isdigit() and raw[-1:] in units and len(raw) <= 12:
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(raw[:-1]) * units[raw[-1]])
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InletError(
            f"--since {text[:80]!r} is neither an ISO 8601 time nor a duration",
            "use e.g. 2026-11-29T20:00:00Z, 2026-11-29, or 15m / 2h / 3d (back from now)",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


#: Most ids a guard examines past its floor per poll: bounds its memory and each query.
WINDOW = 10_000
#: A cursor token holds at most this many delivered ids above its floor (hostile Last-Event-IDs).
MAX_DELIVERED = WINDOW


@dataclass(frozen=True)
class Cursor:
    """A follower's position: everything up to ``floor`` is settled, plus ``delivered`` above it.

    ``delivered`` holds the ids past an open gap that were already handed out: they must not be
    handed out again when the floor later moves past them (exactly once across restarts).
    :meth:`token` / :meth:`parse` give it as one short string (``"120"``, ``"120+122,125"``),
    e.g. for a durable store or an SSE ``Last-Event-ID``.
    """

    floor: int
    delivered: frozenset[int] = frozenset()

    def token(self) -> str:
        if not self.delivered:
            return str(self.floor)
        return f"{self.floor}+{','.join(str(i) for i in sorted(self.delivered))}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """A :class:`Cursor` from :meth:`token`'s text; a one-line :class:`InletError` otherwise."""
        fix = "pass a position this service gave out (an integer, or FLOOR+ID,ID...)"
        text = token.strip()
        if len(text) > 20 * (MAX_DELIVERED + 1):
            raise InletError("position is too long", fix)
        floor_text, _, rest = text.partition("+")
        try:
            floor = int(floor_text) if floor_text.isdigit() else -1
            ids = frozenset(int(x) for x in rest.split(",")) if rest else frozenset()
        except ValueError:
            floor = -1
            ids = frozenset()
        if floor < 0 or len(floor_text) > 19 or any(i <= floor or i > floor + WINDOW for i in ids):
            raise InletError(f"position {text[:40]!r} is not valid", fix)
        return cls(floor, ids)


class GapGuard:
    """Hands out each row once, in ``seq`` order, and moves a :class:`Cursor` only past settled ids.

    A row is handed out as soon as it is committed, even past a gap (no latency is added by a
    gap). The floor moves over an id once it is committed or known dead: a missing id ``m`` is
    dead once an id above ``m`` was seen committed at least ``timeout`` seconds ago (an insert
    that took ``m`` was allocated before that id, so it had ``timeout`` seconds to commit).
    PostgreSQL's and MariaDB's ``INSERT ... ON CONFLICT/IGNORE`` burn ids too: such gaps are
    common, and only cost the floor ``timeout`` seconds, never a delivery.

    Use: ``rows = guard.poll(session, selection, rse=..., limit=..., public_at=...)``; hand each
    out, then ``guard.mark(row)``; persist ``guard.cursor`` whenever convenient.
    """

    def __init__(
        self, cursor: Cursor | int, *, timeout: float = GAP_TIMEOUT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._floor = cursor.floor if isinstance(cursor, Cursor) else int(cursor)
        self._delivered: set[int] = set(cursor.delivered) if isinstance(cursor, Cursor) else set()
        self.timeout = timeout
        self.clock = clock
        #: (highest id seen committed, when first seen), ascending in both.
        self._checkpoints: list[tuple[int, float]] = []
        #: Committed ids above the floor that the selection does not take (settled on sight).
        self._unselected: set[int] = set()
        #: Every id up to this one has been looked at (by :meth:`poll`).
        self.high_water = self._floor

    @property
    def cursor(self) -> Cursor:
        return Cursor(self._floor, frozenset(self._delivered))

    @property
    def waiting(self) -> bool:
        """True while ids above the floor are still open (the owner should look again later)."""
        return bool(self._delivered) or bool(self._checkpoints and self._checkpoints[-1][0] > self._floor)

    def mark(self, seq: int) -> None:
        """``seq`` was handed out and handled: never again."""
        if seq > self._floor:
            self._delivered.add(seq)

    def observe(self, committed: list[int], high: int) -> int:
        """Advance the floor, given every id committed in ``(floor, high]`` (ascending); returns it.

        A committed id stops the floor until it is :meth:`mark`-ed, or seen as not selected
        (:meth:`poll` records those); a missing id stops it until it is dead.
        """
        now = self.clock()
        if committed and (not self._checkpoints or committed[-1] > self._checkpoints[-1][0]):
            self._checkpoints.append((committed[-1], now))
        dead_below = max((h for h, seen in self._checkpoints if now - seen >= self.timeout), default=0)
        floor = self._floor
        for row_id in committed:
            if row_id <= floor:
                continue
            if row_id != floor + 1 and row_id > dead_below:  # an open gap before row_id
                floor = max(floor, dead_below - 1)
                break
            if row_id not in self._delivered and row_id not in self._unselected:
                floor = row_id - 1  # the gap before it (if any) is dead; it is not handled yet
                break
            floor = row_id
        else:
            floor = max(floor, min(dead_below - 1, high))
        self._set_floor(floor)
        return self._floor

    def _set_floor(self, floor: int) -> None:
        self._floor = max(self._floor, floor)
        self._delivered = {i for i in self._delivered if i > self._floor}
        self._unselected = {i for i in self._unselected if i > self._floor}
        self._checkpoints = [(h, t) for h, t in self._checkpoints if h > self._floor]

    def poll(
        self,
        session: Session,
        selection: Selection,
        *,
        rse: str | None,
        limit: int,
        public_at: dt.datetime | None = None,
    ) -> list[FollowedFile]:
        """The rows not handed out yet, in ``seq`` order (at most ``limit``); moves the floor.

        Reads the matching rows and every committed id in a window above the floor, in one
        transaction (the caller's session).
        """
        high = min(last_seq(session), self._floor + WINDOW)
        rows = files_after(session, selection, rse=rse, after=self._floor, limit=limit, public_at=public_at, upto=high)
        if len(rows) == limit:
            high = rows[-1].seq
        committed = ids_between(session, self._floor, high)
        selected = {r.seq for r in rows}
        # Committed rows that the selection does not take are settled as soon as seen.
        self._unselected |= {i for i in committed if i not in selected}
        fresh = [r for r in rows if r.seq not in self._delivered]
        self.observe(committed, high)
        self.high_water = max(self.high_water, high)
        return fresh
