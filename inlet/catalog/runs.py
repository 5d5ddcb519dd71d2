"""What the uploader, the listener and the CLI do to runs and files.

Every function works inside the caller's session and transaction, so that a caller can
combine several of them with its own ledger entry atomically. Rows that several writers
change concurrently (a run's counters and state) are read with ``SELECT ... FOR UPDATE``
on MariaDB; on every backend the run's ``version`` column turns a lost update into an
error that :meth:`Catalog.transaction` retries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rucio_inlet.catalog_models import ConditionKey, FileAvailability, Run, RunFile, RunTransition, utcnow
from rucio_inlet.catalog_states import RunState, check_transition
from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from inlet.catalog.upsert import insert_ignore

#: Keys of conditions must be usable as Rucio metadata keys: no '.', which Rucio's filter
#: syntax uses as the key/operator separator.
_BAD_KEY_CHARS = set(".,;=<>!() '\"")


class CatalogConflict(Exception):
    """A write that contradicts what the catalogue already holds; nothing was changed."""


class NotInCatalog(LookupError):
    """The run or file is not in the catalogue."""


def _check_conditions(conditions: dict[str, Any]) -> None:
    for key in conditions:
        bad = _BAD_KEY_CHARS & set(key)
        if not key or bad or len(key) > 64:
            raise ValueError(
                f"condition key {key!r} is not allowed: keys are 1-64 characters without any of "
                f"{''.join(sorted(_BAD_KEY_CHARS))!r} (they become Rucio metadata keys); rename it, e.g. "
                f"{key.replace('.', '_')!r}"
            )


def get_run(session: Session, experiment: str, run_number: int, *, lock: bool = False) -> Run:
    stmt = select(Run).where(Run.experiment == experiment, Run.run_number == run_number)
    if lock:
        # populate_existing: the locked read must replace what this session loaded earlier.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    run = session.scalars(stmt).one_or_none()
    if run is None:
        raise NotInCatalog(f"run {experiment}/{run_number} is not in the catalogue")
    return run


def upsert_run(
    session: Session,
    experiment: str,
    run_number: int,
    *,
    run_type: str | None = None,
    start_time: dt.datetime | None = None,
    stop_time: dt.datetime | None = None,
    conditions: dict[str, Any] | None = None,
    embargo_until: dt.datetime | None = None,
    scope: str | None = None,
    dataset: str | None = None,
) -> Run:
    """Create the run, or update the fields given; conditions are merged key by key.

    Two workers that see a run's first file at the same moment both call this: one INSERT
    wins, the other finds the row through the unique key and updates it.
    """
    if conditions:
        _check_conditions(conditions)
    insert_ignore(
        session,
        Run.__table__,  # type: ignore[arg-type]
        [
            {
                "experiment": experiment,
                "run_number": run_number,
                "run_type": run_type or "physics",
                "conditions": {},
                "state": RunState.RECORDING.value,
                "state_changed_at": utcnow(),
                "n_files": 0,
                "total_bytes": 0,
                "created_at": utcnow(),
                "updated_at": utcnow(),
                "version": 1,
            }
        ],
    )
    run = get_run(session, experiment, run_number, lock=True)
    fields = {
        "run_type": run_type,
        "start_time": start_time,
        "stop_time": stop_time,
        "embargo_until": embargo_until,
        "scope": scope,
        "dataset": dataset,
    }
    for key, value in fields.items():
        if value is not None and getattr(run, key) != value:
            setattr(run, key, value)
    if conditions:
        before = run.conditions or {}
        merged = {**before, **conditions}
        if merged != before:
            run.conditions = merged
        new_keys = [{"key": k} for k in conditions if k not in before]  # keys of `before` are registered
        insert_ignore(session, ConditionKey.__table__, new_keys)  # type: ignore[arg-type]
    session.flush()
    return run


def transition(
    session: Session, run: Run, target: RunState, *, reason: str | None = None, at: dt.datetime | None = None
) -> Run:
    """Move ``run`` to ``target`` if the life cycle allows it; else raise, changing nothing.

    The row is re-read under a lock first: the decision is taken on the committed state,
    not on what this session happened to load earlier.
    """
    session.refresh(run, with_for_update=True)
    current = run.state
    check_transition(run.label, current, target)
    when = at or utcnow()
    run.state = target
    run.state_reason = reason
    run.state_changed_at = when
    session.add(RunTransition(run=run, from_state=current.value, to_state=target.value, at=when, reason=reason))
    session.flush()
    return run


@dataclass(frozen=True)
class FileSpec:
    """A file to record: its DID, size, checksums and when the DAQ closed it."""

    scope: str
    name: str
    size: int
    adler32: str | None = None
    md5: str | None = None
    closed_at: dt.datetime | None = None

    def checked(self) -> FileSpec:
        if self.size < 0:
            raise ValueError(f"file {self.scope}:{self.name}: negative size {self.size}")
        adler = self.adler32.lower() if self.adler32 else None
        if adler is not None and (len(adler) != 8 or any(c not in "0123456789abcdef" for c in adler)):
            raise ValueError(f"file {self.scope}:{self.name}: adler32 {self.adler32!r} is not 8 hex digits")
        md5 = self.md5.lower() if self.md5 else None
        if md5 is not None and (len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5)):
            raise ValueError(f"file {self.scope}:{self.name}: md5 {self.md5!r} is not 32 hex digits")
        return FileSpec(self.scope, self.name, self.size, adler, md5, self.closed_at)


def _conflict(existing: Any, run: Run, spec: FileSpec) -> CatalogConflict | None:
    """``existing``: a recorded file (a row with run_id, size, adler32, md5)."""
    if (
        existing.run_id != run.id
        or existing.size != spec.size
        or (spec.adler32 and existing.adler32 != spec.adler32)
        or (spec.md5 and existing.md5 and existing.md5 != spec.md5)
    ):
        return CatalogConflict(
            f"file {spec.scope}:{spec.name} is already in the catalogue with run id {existing.run_id}, "
            f"size {existing.size}, adler32 {existing.adler32}; refusing to overwrite it with "
            f"run id {run.id}, size {spec.size}, adler32 {spec.adler32} (a DID names one content forever: "
            "give the new file a new name)"
        )
    return None


def _existing(session: Session, specs: list[FileSpec]) -> dict[tuple[str, str], Any]:
    """The recorded files among ``specs``: plain rows (no ORM objects: a batch's worth of them
    costs more to build than the query itself) with the columns a conflict check needs."""
    found: dict[tuple[str, str], Any] = {}
    cols = (RunFile.scope, RunFile.name, RunFile.run_id, RunFile.size, RunFile.adler32, RunFile.md5)
    by_scope: dict[str, list[str]] = {}
    for f in specs:
        by_scope.setdefault(f.scope, []).append(f.name)
    # scope = ? AND name IN (...): a range on the (scope, name) unique index, which a
    # row-constructor IN over both columns does not always get on MariaDB.
    for scope, names in by_scope.items():
        for i in range(0, len(names), 1000):
            stmt = select(*cols).where(RunFile.scope == scope, RunFile.name.in_(names[i : i + 1000]))
            found.update({(f.scope, f.name): f for f in session.execute(stmt)})
    return found


def add_files(session: Session, run: Run, files: list[FileSpec]) -> int:
    """Record files of ``run`` in one go; returns how many were new.

    A file already recorded with the same content is skipped (a retried upload batch is
    harmless); one recorded with other content, or under another run, raises
    :class:`CatalogConflict` and nothing of the batch is written. The run's counters change
    under the run's row lock, so parallel workers adding files to one run lose no increment.
    """
    specs = [f.checked() for f in files]
    if len({(f.scope, f.name) for f in specs}) != len(specs):
        raise ValueError("the same file is listed twice in one batch")
    session.refresh(run, with_for_update=True)
    existing = _existing(session, specs)
    for spec in specs:
        if (spec.scope, spec.name) in existing:
            err = _conflict(existing[(spec.scope, spec.name)], run, spec)
            if err is not None:
                raise err
    new = [f for f in specs if (f.scope, f.name) not in existing]
    if not new:
        return 0
    rows = [
        {"run_id": run.id, "scope": f.scope, "name": f.name, "size": f.size, "adler32": f.adler32, "md5": f.md5,
         "closed_at": f.closed_at, "created_at": utcnow()}
        for f in new
    ]  # fmt: skip
    inserted = insert_ignore(session, RunFile.__table__, rows)  # type: ignore[arg-type]
    if inserted != len(new):
        # Another writer recorded some of these DIDs (under another run) since our check.
        raced = _existing(session, new)
        for spec in new:
            err = _conflict(raced[(spec.scope, spec.name)], run, spec)
            if err is not None:
                raise err
        raise CatalogConflict(f"run {run.label}: {len(new) - inserted} file(s) were recorded concurrently; retry")
    run.n_files += len(new)
    run.total_bytes += sum(f.size for f in new)
    session.flush()
    return len(new)


def add_file(
    session: Session,
    run: Run,
    scope: str,
    name: str,
    size: int,
    *,
    adler32: str | None = None,
    md5: str | None = None,
    closed_at: dt.datetime | None = None,
) -> RunFile:
    """Record one file of ``run`` (see :func:`add_files`); the same file again is a no-op."""
    add_files(session, run, [FileSpec(scope, name, size, adler32, md5, closed_at)])
    return get_file(session, scope, name)


def find_file(session: Session, scope: str, name: str) -> RunFile | None:
    return session.scalars(select(RunFile).where(RunFile.scope == scope, RunFile.name == name)).one_or_none()


def get_file(session: Session, scope: str, name: str) -> RunFile:
    f = find_file(session, scope, name)
    if f is None:
        raise NotInCatalog(f"file {scope}:{name} is not in the catalogue")
    return f


def mark_file(
    session: Session,
    scope: str,
    name: str,
    *,
    closed_at: dt.datetime | None = None,
    uploaded_at: dt.datetime | None = None,
    registered_at: dt.datetime | None = None,
) -> RunFile:
    """Set a file's milestone times; a time already set is kept (the first report wins)."""
    f = get_file(session, scope, name)
    for key, value in (("closed_at", closed_at), ("uploaded_at", uploaded_at), ("registered_at", registered_at)):
        if value is not None and getattr(f, key) is None:
            setattr(f, key, value)
    session.flush()
    return f


def mark_available(session: Session, scope: str, name: str, rse: str, at: dt.datetime | None = None) -> bool:
    """Record that the file is on ``rse``; True if that is news (duplicates are ignored)."""
    f = get_file(session, scope, name)
    when = at or utcnow()
    return (
        insert_ignore(
            session,
            FileAvailability.__table__,  # type: ignore[arg-type]
            [{"file_id": f.id, "rse": rse, "available_at": when}],
        )
        == 1
    )


def files_on(session: Session, run: Run, rse: str) -> int:
    """How many of the run's files are available on ``rse``."""
    from sqlalchemy import func

    stmt = (
        select(func.count())
        .select_from(FileAvailability)
        .join(RunFile, RunFile.id == FileAvailability.file_id)
        .where(RunFile.run_id == run.id, FileAvailability.rse == rse)
    )
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class RunFiles:
    """One run's part of :func:`add_runs_files`: the run's fields (as :func:`upsert_run` takes
    them, e.g. ``{"scope": ..., "dataset": ..., "conditions": {...}}``) and its new files."""

    experiment: str
    run_number: int
    files: list[FileSpec]
    fields: dict[str, Any] | None = None


_RUN_FIELDS = ("run_type", "start_time", "stop_time", "embargo_until", "scope", "dataset")


def add_runs_files(session: Session, batch: list[RunFiles]) -> int:
    """:func:`upsert_run` + :func:`add_files` for many runs at once, in set-based SQL; new files.

    The same checks and the same integrity as the one-run functions (content conflicts
    refused and nothing written, duplicates of the same content skipped, counters changed
    under each run's row lock, the version counter bumped), but with a handful of
    statements for the whole batch instead of five or six per run: a multi-row INSERT
    IGNORE of the runs, one locked SELECT of them, one SELECT of the files already
    recorded, one multi-row INSERT of the new files, then the runs' UPDATEs in one flush.
    """
    if not batch:
        return 0
    keys = [(b.experiment, b.run_number) for b in batch]
    if len(set(keys)) != len(keys):
        raise ValueError("the same run is listed twice in one batch: merge its files into one entry")
    specs_of = {(b.experiment, b.run_number): [f.checked() for f in b.files] for b in batch}
    everything = [f for specs in specs_of.values() for f in specs]
    if len({(f.scope, f.name) for f in everything}) != len(everything):
        raise ValueError("the same file is listed twice in one batch")
    for b in batch:
        if b.fields and b.fields.get("conditions"):
            _check_conditions(b.fields["conditions"])
    now = utcnow()
    insert_ignore(
        session,
        Run.__table__,  # type: ignore[arg-type]
        [
            {"experiment": e, "run_number": n, "run_type": (b.fields or {}).get("run_type") or "physics",
             "conditions": {}, "state": RunState.RECORDING.value, "state_changed_at": now, "n_files": 0,
             "total_bytes": 0, "created_at": now, "updated_at": now, "version": 1}
            for b in batch
            for e, n in [(b.experiment, b.run_number)]
        ],
    )  # fmt: skip
    runs: dict[tuple[str, int], Run] = {}
    for i in range(0, len(keys), 500):
        stmt = (
            select(Run)
            .where(tuple_(Run.experiment, Run.run_number).in_(keys[i : i + 500]))
            .order_by(Run.id)  # locks taken in one order by every writer: no deadlock between batches
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        runs.update({(r.experiment, r.run_number): r for r in session.scalars(stmt)})
    # One UPDATE per run at the end (fields and counters together), not one per autoflush.
    with session.no_autoflush:
        return _bulk_apply(session, batch, runs, specs_of, everything, now)


def _bulk_apply(
    session: Session,
    batch: list[RunFiles],
    runs: dict[tuple[str, int], Run],
    specs_of: dict[tuple[str, int], list[FileSpec]],
    everything: list[FileSpec],
    now: dt.datetime,
) -> int:
    new_keys: set[str] = set()
    # The runs' new values are gathered here and written by one executemany UPDATE at the end
    # (the ORM would send one UPDATE per run, each its own round trip).
    changes: dict[tuple[str, int], dict[str, Any]] = {}
    for b in batch:
        run = runs[(b.experiment, b.run_number)]
        fields = b.fields or {}
        change = {
            key: fields[key] for key in _RUN_FIELDS if fields.get(key) is not None and getattr(run, key) != fields[key]
        }
        conditions = fields.get("conditions")
        if conditions:
            before = run.conditions or {}
            merged = {**before, **conditions}
            if merged != before:
                change["conditions"] = merged
            new_keys.update(k for k in conditions if k not in before)
        if change:
            changes[(b.experiment, b.run_number)] = change
    insert_ignore(session, ConditionKey.__table__, [{"key": k} for k in sorted(new_keys)])  # type: ignore[arg-type]
    existing = _existing(session, everything)
    rows: list[dict[str, Any]] = []
    added: dict[tuple[str, int], list[FileSpec]] = {}
    for run_key, specs in specs_of.items():
        run = runs[run_key]
        for spec in specs:
            if (spec.scope, spec.name) in existing:
                err = _conflict(existing[(spec.scope, spec.name)], run, spec)
                if err is not None:
                    raise err
                continue
            added.setdefault(run_key, []).append(spec)
            row = {"run_id": run.id, "scope": spec.scope, "name": spec.name, "size": spec.size}
            rows.append(
                {**row, "adler32": spec.adler32, "md5": spec.md5, "closed_at": spec.closed_at, "created_at": now}
            )
    inserted = insert_ignore(session, RunFile.__table__, rows)  # type: ignore[arg-type]
    if inserted != len(rows):
        new_specs = [f for specs in added.values() for f in specs]
        raced = _existing(session, new_specs)
        for run_key, specs in added.items():
            for spec in specs:
                err = _conflict(raced[(spec.scope, spec.name)], runs[run_key], spec)
                if err is not None:
                    raise err
        raise CatalogConflict(f"{len(rows) - inserted} file(s) were recorded concurrently; retry")
    params = []
    by_id = {run.id: run for run in runs.values()}
    for run_key in changes.keys() | added.keys():
        run, specs = runs[run_key], added.get(run_key, [])
        values = {key: getattr(run, key) for key in (*_RUN_FIELDS, "conditions")} | changes.get(run_key, {})
        params.append({f"b_{k}": v for k, v in values.items()} | {
            "b_id": run.id, "b_version": run.version, "b_new_version": run.version + 1, "b_updated_at": now,
            "b_n_files": run.n_files + len(specs), "b_total_bytes": run.total_bytes + sum(f.size for f in specs),
        })  # fmt: skip
    if params:
        table: Table = Run.__table__  # type: ignore[assignment]
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
            .values({c: bindparam(f"b_{c}", type_=table.c[c].type) for c in (*_RUN_FIELDS, "conditions", "n_files",
                     "total_bytes", "updated_at")} | {"version": bindparam("b_new_version")})
        )  # fmt: skip
        if session.get_bind().dialect.name in ("mysql", "mariadb"):
            _upsert_runs_mysql(session, table, params, by_id)
        elif (result := session.connection().execute(stmt, params)).rowcount != len(params):
            # A run changed since our locked read (only possible where FOR UPDATE is a no-op):
            # the transaction is retried whole, as for the ORM's own version check.
            raise StaleDataError(f"{len(params) - result.rowcount} run(s) changed concurrently; retry")
        # The loaded objects take the written values as their committed state (cheaper than
        # expiring them, which would cost the caller a SELECT per run on next access).
        for p in params:
            run = by_id[p["b_id"]]
            for key in (*_RUN_FIELDS, "conditions", "n_files", "total_bytes", "updated_at"):
                set_committed_value(run, key, p[f"b_{key}"])
            set_committed_value(run, "version", p["b_new_version"])
    return len(rows)


def _upsert_runs_mysql(session: Session, table: Table, params: list[dict[str, Any]], by_id: dict[int, Run]) -> None:
    """MariaDB: the runs' UPDATEs as one multi-row ``INSERT ... ON DUPLICATE KEY UPDATE``.

    An executemany UPDATE is one round trip per run there; this is one statement. Every row
    exists and is held under this transaction's ``FOR UPDATE`` lock (taken in
    :func:`add_runs_files`), so no other writer can have changed it and the version check of
    the UPDATE path has nothing to catch; the version is still bumped.
    """
    rows = []
    for p in params:
        run = by_id[p["b_id"]]
        row = {c.key: getattr(run, c.key) for c in table.columns}
        row.update({k[2:]: v for k, v in p.items() if k[2:] in row and k not in ("b_id", "b_version")})
        row["version"] = p["b_new_version"]
        rows.append(row)
    stmt = mysql.insert(table).values(rows)
    keep = (*_RUN_FIELDS, "conditions", "n_files", "total_bytes", "updated_at", "version")
    session.connection().execute(stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in keep}))
