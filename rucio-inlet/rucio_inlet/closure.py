"""The effective embargo of what an operation touches, looked up in bulk inside the Rucio server.

The **effective embargo** of a DID is the latest of its own ``embargo_until``, that of every
collection above it (any depth) and the run catalogue's embargo for its run. An operation that
may put replicas somewhere (a rule, an attachment under a ruled collection, a replica
registration) copies everything *below* what it targets, and each of those DIDs carries the
embargoes of everything *above* it, including collections of other accounts. So the set to look
at is the closure of the targets: all descendants (content, any depth), then all ancestors of
every one of them. A file in my dataset that also sits in someone's embargoed dataset is
embargoed.

Cost: one query per level and per 500 DIDs for the graph, one per 500 DIDs for the stored
metadata and one per 500 DIDs for the run catalogue; a rule on a run dataset of thousands of files
makes a handful of queries, not thousands.

Fail closed: an unreadable ``embargo_until`` or a run catalogue that cannot be asked count as an
embargo that never ends (the caller only asks when a public RSE is involved).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rucio_inlet.embargo import EMBARGO_KEY, parse_embargo

if TYPE_CHECKING:
    from rucio.common.types import InternalScope
    from sqlalchemy.orm import Session

CHUNK = 500
Key = tuple[str, str]  # (internal scope, name)


@dataclass(frozen=True)
class Embargo:
    did: str  # "scope:name" holding the embargo
    raw: object
    until: dt.datetime | None  # None: unreadable, which counts as embargoed (fail closed)
    source: str = EMBARGO_KEY  # "embargo_until" or "the run catalogue"

    def active(self, now: dt.datetime) -> bool:
        return self.until is None or self.until > now

    def describe(self) -> str:
        where = f"{self.source} of {self.did}" if self.source == EMBARGO_KEY else f"{self.source} for {self.did}"
        if self.until is None:
            return f"unreadable embargo {self.raw!r} ({where}), which counts as embargoed"
        return f"under embargo until {self.until.isoformat()} ({where})"


def scope_of(value: Any, vo: str = "def") -> InternalScope:
    """An InternalScope from what Rucio hands the permission check (external strings in places)."""
    from rucio.common.types import InternalScope

    return value if isinstance(value, InternalScope) else InternalScope(str(value), vo=vo)


def _type_name(value: object) -> str:
    return str(getattr(value, "name", value)).upper()


def closure(
    seeds: Iterable[tuple[InternalScope, str]], session: Session, *, down: bool = True
) -> list[tuple[InternalScope, str]]:
    """The seeds, everything below them (if ``down``), and every collection above any of those."""
    from rucio.db.sqla import models
    from sqlalchemy import select, tuple_

    assoc = models.DataIdentifierAssociation
    nodes: dict[Key, tuple[InternalScope, str]] = {}
    for s, n in seeds:
        nodes.setdefault((s.internal, n), (s, n))
    if down:
        frontier = list(nodes.values())
        while frontier:
            new: list[tuple[InternalScope, str]] = []
            for i in range(0, len(frontier), CHUNK):
                chunk = frontier[i : i + CHUNK]
                stmt = select(assoc.child_scope, assoc.child_name, assoc.child_type).where(
                    tuple_(assoc.scope, assoc.name).in_(chunk)
                )
                for row in session.execute(stmt):
                    key = (row.child_scope.internal, row.child_name)
                    if key not in nodes:
                        nodes[key] = (row.child_scope, row.child_name)
                        if _type_name(row.child_type) != "FILE":
                            new.append(nodes[key])
            frontier = new
    frontier = list(nodes.values())
    while frontier:
        new = []
        for i in range(0, len(frontier), CHUNK):
            chunk = frontier[i : i + CHUNK]
            stmt = select(assoc.scope, assoc.name).where(tuple_(assoc.child_scope, assoc.child_name).in_(chunk))
            for row in session.execute(stmt):
                key = (row.scope.internal, row.name)
                if key not in nodes:
                    nodes[key] = (row.scope, row.name)
                    new.append(nodes[key])
        frontier = new
    return list(nodes.values())


def _stored(dids: list[tuple[InternalScope, str]], session: Session) -> Iterator[tuple[str, object]]:
    """(did, embargo_until) as stored by the metadata plugin that holds the key."""
    from rucio.core.did_meta_plugins import METADATA_PLUGIN_MODULES
    from rucio.core.did_meta_plugins.json_meta import JSONDidMeta

    holder = next((p for p in METADATA_PLUGIN_MODULES if p.manages_key(EMBARGO_KEY, session=session)), None)
    if isinstance(holder, JSONDidMeta):
        from rucio.db.sqla import models
        from sqlalchemy import select, tuple_

        for i in range(0, len(dids), CHUNK):
            stmt = select(models.DidMeta.scope, models.DidMeta.name, models.DidMeta.meta).where(
                tuple_(models.DidMeta.scope, models.DidMeta.name).in_(dids[i : i + CHUNK])
            )
            for row in session.execute(stmt):
                meta = row.meta if isinstance(row.meta, dict) else {}
                if meta.get(EMBARGO_KEY) not in (None, ""):
                    yield f"{row.scope.external}:{row.name}", meta[EMBARGO_KEY]
    elif holder is not None:
        for s, n in dids:
            value = holder.get_metadata(s, n, session=session).get(EMBARGO_KEY)
            if value not in (None, ""):
                yield f"{s.external}:{n}", value


def _catalogued(dids: list[tuple[InternalScope, str]], session: Session) -> Iterator[Embargo]:
    """Embargoes from metadata plugins that know runs (rucio_inlet.runmeta: ``embargo_values``)."""
    from rucio.core.did_meta_plugins import METADATA_PLUGIN_MODULES

    for plugin in METADATA_PLUGIN_MODULES:
        lookup = getattr(plugin, "embargo_values", None)
        if lookup is None:
            continue
        try:
            values = lookup([(s.external, n) for s, n in dids], session=session)
        except Exception as exc:  # any failure of the catalogue: fail closed
            yield Embargo("the DIDs concerned", f"run catalogue unreadable: {exc}", None, "the run catalogue")
            continue
        for (scope, name), value in values.items():
            yield _embargo(f"{scope}:{name}", value, "the run catalogue")


def _embargo(did: str, raw: object, source: str) -> Embargo:
    try:
        until: dt.datetime | None = parse_embargo(raw)
    except ValueError:
        until = None
    return Embargo(did, raw, until, source)


def embargoes_of(dids: list[tuple[InternalScope, str]], session: Session) -> list[Embargo]:
    """Every embargo (active or not) held by these DIDs, stored or from the run catalogue."""
    found = [_embargo(did, raw, EMBARGO_KEY) for did, raw in _stored(dids, session)]
    found.extend(_catalogued(dids, session))
    return found


def active_embargoes(
    seeds: Iterable[tuple[InternalScope, str]], session: Session, *, down: bool = True, now: dt.datetime | None = None
) -> list[Embargo]:
    """Active embargoes on the closure of the seeds, latest end first (unreadable ones first of all)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    active = [e for e in embargoes_of(closure(seeds, session, down=down), session) if e.active(now)]
    far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    return sorted(active, key=lambda e: e.until or far, reverse=True)
