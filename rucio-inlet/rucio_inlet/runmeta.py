"""Rucio DID-metadata plugin that shows the inlet run catalogue to Rucio users.

Enable it in rucio.cfg, before Rucio's JSON plugin (which claims every key, so it must come
last)::

    [metadata]
    plugins = rucio_inlet.runmeta.RunMetaPlugin,rucio_inlet.embargo_meta.EmbargoMetaPlugin,
              rucio.core.did_meta_plugins.json_meta.JSONDidMeta   (one line in the file)
    inlet_catalog_url = mysql+pymysql://inlet:...@db-host/inlet

(``INLET_CATALOG__URL`` in the server's environment is the fallback). The lake writes both.

What Rucio users get, for every file DID of a run and for the run's dataset DID:

- ``rucio did metadata list SCOPE:NAME`` shows ``experiment``, ``run_nr``, ``run_type``,
  ``run_state``, ``run_start``, ``run_stop``, ``run_embargo_until`` (and ``embargo_until``,
  which inlet's policy package enforces) plus every key of the run's ``conditions``;
- ``rucio did list SCOPE:* --filter "run_nr>=5000,run_type=physics;stream=ksl"`` (``,`` AND,
  ``;`` OR, operators ``= != < > <= >=`` and ranges ``5000<run_nr<6000``), and the client's
  ``list_dids(scope, filters)``, select from the catalogue.

Mixing keys of two plugins: Rucio refuses a filter whose keys belong to two plugins, and
``run_number`` is a column of Rucio's own DID table (plugin DID_COLUMN), so
``run_number=5000,run_type=physics`` is refused. Write ``run_nr`` instead: it is this
plugin's copy of the run number, so ``run_nr=5000,run_type=physics`` works. ``name`` may be
combined with anything (Rucio passes it to every plugin).

Writes: the catalogue, not Rucio, owns run-level metadata. Setting one of these keys on a
DID the catalogue knows is accepted when the value agrees with the catalogue (so a client
that re-sends the run's metadata keeps working) and refused when it contradicts it. On a DID
the catalogue does not know, the key is stored by Rucio's JSON plugin as usual.

This module runs inside the Rucio server (Python 3.9 in Rucio's images): it imports the catalogue's
tables and query compiler from this package, and nothing of inlet.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rucio.common import config as rucio_config
from rucio.common import exception
from rucio.common.types import InternalScope
from rucio.core.did_meta_plugins.did_meta_plugin_interface import DidMetaPlugin
from rucio.core.did_meta_plugins.filter_engine import FilterEngine
from rucio.core.did_meta_plugins.json_meta import JSONDidMeta
from rucio.db.sqla import models
from sqlalchemy import Engine, Select, create_engine, select, tuple_
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rucio_inlet.catalog_models import ConditionKey, Run, RunFile
from rucio_inlet.catalog_query import RUN_KEYS, And, Cmp, Node, Or, QueryError, compile_node

log = logging.getLogger(__name__)

PLUGIN_NAME = "INLET_RUNS"
#: The keys this plugin answers for; condition keys are added from the catalogue.
FIXED_KEYS = ("experiment", "run_nr", "run_type", "run_state", "run_start", "run_stop", "run_embargo_until")
#: Also shown by get_metadata (the policy package's embargo key), but not claimed: writes and
#: filters on it stay with the JSON plugin, as the policy package expects.
SHOWN_ONLY = "embargo_until"
_MISS_CACHE_S = 1.0
_CHUNK = 500
_OPS = {"": "=", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def catalog_url() -> str:
    url = rucio_config.config_get("metadata", "inlet_catalog_url", raise_exception=False, default=None)
    url = url or os.environ.get("INLET_CATALOG__URL")
    if not url:
        raise exception.RucioException(
            "rucio_inlet.runmeta: no run catalogue configured; set [metadata] inlet_catalog_url in rucio.cfg "
            "(or INLET_CATALOG__URL in the server's environment)"
        )
    return str(url)


class Catalog:
    """Read access to the run catalogue: an engine and its sessions, nothing of inlet.

    inlet's services own the schema (inlet.catalog migrates it); this plugin only reads, so it
    never migrates and needs neither Alembic nor inlet in Rucio's processes.
    """

    def __init__(self, url: str) -> None:
        try:
            backend = make_url(url).get_backend_name()
            # A long-lived server process: drop connections the database closed meanwhile.
            kwargs: dict[str, Any] = {} if backend == "sqlite" else {"pool_pre_ping": True, "pool_recycle": 3600}
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise exception.RucioException(
                f"rucio_inlet.runmeta: the run catalogue URL in [metadata] inlet_catalog_url is not usable ({exc}); "
                "set it to a SQLAlchemy URL such as mysql+pymysql://USER:PASSWORD@HOST/DB with its driver installed"
            ) from exc
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


def _iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value else None


def run_metadata(run: Run) -> dict[str, Any]:
    """The metadata Rucio shows for a run's DIDs."""
    meta: dict[str, Any] = {
        "experiment": run.experiment,
        "run_nr": run.run_number,
        "run_type": run.run_type,
        "run_state": run.state.value,
        "run_start": _iso(run.start_time),
        "run_stop": _iso(run.stop_time),
        "run_embargo_until": _iso(run.embargo_until),
    }
    if run.embargo_until is not None:
        meta[SHOWN_ONLY] = _iso(run.embargo_until)
    for key, value in (run.conditions or {}).items():
        meta.setdefault(key, value)
    return meta


def _filter_key(key: str) -> tuple[str, str]:
    name, _, suffix = key.partition(".")
    if suffix not in _OPS:
        raise exception.DIDFilterSyntaxError(f"operator suffix {suffix!r} of {key!r} not understood")
    return name, _OPS[suffix]


def filters_to_node(filters: list[dict[str, Any]]) -> Node:
    """Rucio's filters (a list of OR groups of ``key.op: value``) as a catalogue condition."""
    groups: list[Node] = []
    for or_group in filters:
        cmps: list[Node] = []
        for raw_key, raw_value in or_group.items():
            key, op = _filter_key(raw_key)
            value = raw_value
            if isinstance(value, str):
                value = FilterEngine._try_typecast_string(None, value)  # Rucio's own CLI typecasting
            if key == "run_nr":
                key = "run_number"
            cmps.append(Cmp(key, op, value))  # type: ignore[arg-type]
        groups.append(And(tuple(cmps)))
    return Or(tuple(groups))


class RunMetaPlugin(DidMetaPlugin):  # type: ignore[misc]
    """Run-level metadata from the inlet run catalogue (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._plugin_name = PLUGIN_NAME
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()
        self._keys: frozenset[str] = frozenset()
        self._misses: dict[str, float] = {}
        self._json: JSONDidMeta | None = None

    # -- plumbing ------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        # Opened on first use, not at import: a catalogue that is down must not stop the
        # Rucio server from starting, only this plugin's answers.
        with self._lock:
            if self._catalog is None:
                self._catalog = Catalog(catalog_url())
            return self._catalog

    @property
    def json_plugin(self) -> JSONDidMeta:
        if self._json is None:
            self._json = JSONDidMeta()
        return self._json

    def _is_condition_key(self, key: str) -> bool:
        """Keys seen once stay known; a miss asks the catalogue again (at most once a second per
        key), so a key a run got a moment ago is claimed at once, not after a cache expiry."""
        if key in self._keys:
            return True
        now = time.monotonic()
        if now - self._misses.get(key, -_MISS_CACHE_S) < _MISS_CACHE_S:
            return False
        try:
            with self.catalog.session() as s:
                found = s.scalar(select(ConditionKey.key).where(ConditionKey.key == key)) is not None
        except (SQLAlchemyError, exception.RucioException) as exc:
            log.warning("run catalogue unreachable, condition key %r unknown: %s", key, exc)
            found = False
        if found:
            self._keys = self._keys | {key}
            self._misses.pop(key, None)
        else:
            self._misses[key] = now
        return found

    def _run_of(self, s: Session, scope: InternalScope, name: str) -> Run | None:
        f = s.scalars(select(RunFile).where(RunFile.scope == scope.external, RunFile.name == name)).one_or_none()
        if f is not None:
            return f.run
        return s.scalars(select(Run).where(Run.scope == scope.external, Run.dataset == name)).first()

    # -- DidMetaPlugin -------------------------------------------------------------------
    def manages_key(self, key: str, *, session: Any = None) -> bool:
        return key in FIXED_KEYS or self._is_condition_key(key)

    def get_metadata(self, scope: InternalScope, name: str, *, session: Any = None) -> dict[str, Any]:
        with self.catalog.session() as s:
            run = self._run_of(s, scope, name)
            return run_metadata(run) if run is not None else {}

    def set_metadata(
        self, scope: InternalScope, name: str, key: str, value: Any, recursive: bool = False, *, session: Any = None
    ) -> None:
        self.set_metadata_bulk(scope, name, {key: value}, recursive, session=session)

    def set_metadata_bulk(
        self,
        scope: InternalScope,
        name: str,
        meta: dict[str, Any],
        recursive: bool = False,
        *,
        session: Any = None,
    ) -> None:
        with self.catalog.session() as s:
            run = self._run_of(s, scope, name)
            current = run_metadata(run) if run is not None else None
        if current is None:
            self.json_plugin.set_metadata_bulk(scope, name, meta, recursive, session=session)
            return
        for key, value in meta.items():
            if str(current.get(key)) != str(value):
                raise exception.InvalidMetadata(
                    f"{key}={value!r} on {scope.external}:{name} contradicts the inlet run catalogue, which "
                    f"holds {key}={current.get(key)!r} for this run: run-level metadata is changed in the "
                    "catalogue (inlet.catalog / the uploader), and Rucio shows it from there"
                )

    def delete_metadata(self, scope: InternalScope, name: str, key: str, *, session: Any = None) -> None:
        with self.catalog.session() as s:
            known = self._run_of(s, scope, name) is not None
        if known:
            raise exception.InvalidMetadata(
                f"{key} of {scope.external}:{name} comes from the inlet run catalogue and cannot be deleted in "
                "Rucio; change the run in the catalogue"
            )
        self.json_plugin.delete_metadata(scope, name, key, session=session)

    def embargo_values(self, dids: list[tuple[str, str]], *, session: Any = None) -> dict[tuple[str, str], str]:
        """The run catalogue's embargo (ISO text) of each given (scope, name) it knows and that has one.

        inlet's permission check (rucio_inlet.permission) calls this for the whole closure of
        a rule or an attachment: one query per 500 DIDs, not one per DID. Errors propagate: the
        caller counts an unreadable catalogue as an embargo (fail closed)."""
        found: dict[tuple[str, str], str] = {}
        with self.catalog.session() as s:
            for i in range(0, len(dids), _CHUNK):
                chunk = dids[i : i + _CHUNK]
                files = s.execute(
                    select(RunFile.scope, RunFile.name, Run.embargo_until)
                    .join(Run, Run.id == RunFile.run_id)
                    .where(tuple_(RunFile.scope, RunFile.name).in_(chunk), Run.embargo_until.is_not(None))
                )
                runs = s.execute(
                    select(Run.scope, Run.dataset, Run.embargo_until).where(
                        tuple_(Run.scope, Run.dataset).in_(chunk), Run.embargo_until.is_not(None)
                    )
                )
                for scope, name, until in [*files, *runs]:
                    found[(scope, name)] = _iso(until) or ""
        return found

    def list_dids(
        self,
        scope: InternalScope,
        filters: list[dict[str, Any]] | dict[str, Any],
        did_type: str = "collection",
        ignore_case: bool = False,
        limit: int | None = None,
        offset: int | None = None,
        long: bool = False,
        recursive: bool = False,
        ignore_dids: set[str] | None = None,
        *,
        session: Any = None,
    ) -> Iterator[str | dict[str, Any]]:
        if recursive:
            raise exception.UnsupportedOperation(f"{PLUGIN_NAME} does not list recursively; drop --recursive")
        if isinstance(filters, dict):
            filters = [filters]
        try:
            node = filters_to_node(filters)
        except QueryError as exc:
            raise exception.DIDFilterSyntaxError(str(exc)) from exc
        levels: list[str] = []
        if did_type in ("all", "file"):
            levels.append("file")
        if did_type in ("all", "collection", "dataset"):
            levels.append("run")
        seen = ignore_dids if ignore_dids is not None else set()
        skip = offset or 0
        yielded = 0
        for level in levels:
            for batch in self._candidates(scope, node, level):
                for row in self._existing(scope, batch, long, session):
                    did = f"{scope.external}:{row if isinstance(row, str) else row['name']}"
                    if did in seen:
                        continue
                    seen.add(did)
                    if skip:
                        skip -= 1
                        continue
                    yield row
                    yielded += 1
                    if limit is not None and yielded >= limit:
                        return

    def _candidates(self, scope: InternalScope, node: Node, level: str) -> Iterator[list[str]]:
        try:
            where = compile_node(node, "file" if level == "file" else "run")
        except QueryError as exc:
            raise exception.DIDFilterSyntaxError(str(exc)) from exc
        stmt: Select[Any]
        if level == "file":
            stmt = (
                select(RunFile.name)
                .join(Run, Run.id == RunFile.run_id)
                .where(RunFile.scope == scope.external, where)
                .order_by(Run.run_number, RunFile.name)
            )
        else:
            stmt = (
                select(Run.dataset)
                .where(Run.scope == scope.external, Run.dataset.is_not(None), where)
                .order_by(Run.run_number)
            )
        with self.catalog.session() as s:
            names = [n for n in s.scalars(stmt).all() if n]
        for i in range(0, len(names), _CHUNK):
            yield names[i : i + _CHUNK]

    @staticmethod
    def _existing(scope: InternalScope, names: list[str], long: bool, session: Session) -> Iterator[Any]:
        """Only DIDs that exist in Rucio: the catalogue may know files not registered yet."""
        did = models.DataIdentifier
        rows = session.execute(
            select(did.name, did.did_type, did.bytes, did.length).where(
                tuple_(did.scope, did.name).in_([(scope, n) for n in names])
            )
        ).all()
        by_name = {r.name: r for r in rows}
        for n in names:
            r = by_name.get(n)
            if r is None:
                continue
            if long:
                yield {"scope": scope, "name": n, "did_type": r.did_type.name, "bytes": r.bytes, "length": r.length}
            else:
                yield n


__all__ = ["FIXED_KEYS", "PLUGIN_NAME", "RUN_KEYS", "RunMetaPlugin", "filters_to_node", "run_metadata"]
