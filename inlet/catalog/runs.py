"""What the uploader, the listener and the CLI do to runs and files.

Every function works inside the caller's session and transaction, so that a caller can
combine several of them with its own ledger entry atomically. Rows that several writers
change concurrently (a run's counters and state) are read with ``SELECT ... FOR UPDATE``
on MariaDB; on every backend the run's ``version`` column turns a lost update into an
error that :meth:`Catalog.transaction` retries.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from rucio_inlet.catalog_models import ConditionKey, FileAvailability, Run, RunFile, RunTransition, utcnow
from rucio_inlet.catalog_states import RunState, check_transition
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from inlet.catalog.upsert import insert_ignore, insert_ignore_returning

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
        """This spec with lower-case checksums; raises ValueError on a bad size or checksum."""
        if self.size < 0:
            raise ValueError(f"file {self.scope}:{self.name}: negative size {self.size}")
        adler = self.adler32.lower() if self.adler32 else None
        if adler is not None and not _ADLER32.fullmatch(adler):
            raise ValueError(f"file {self.scope}:{self.name}: adler32 {self.adler32!r} is not 8 hex digits")
        md5 = self.md5.lower() if self.md5 else None
        if md5 is not None and not _MD5.fullmatch(md5):
            raise ValueError(f"file {self.scope}:{self.name}: md5 {self.md5!r} is not 32 hex digits")
        if adler == self.adler32 and md5 == self.md5:
            return self  # already normal (the usual case): no copy per file of a bulk write
        return FileSpec(self.scope, self.name, self.size, adler, md5, self.closed_at)


_ADLER32 = re.compile(r"[0-9a-f]{8}")
_MD5 = re.compile(r"[0-9a-f]{32}")


def _conflict(existing: Any, run_id: int | None, spec: FileSpec) -> CatalogConflict | None:
    """``existing``: a recorded file (a row with run_id, size, adler32, md5); ``run_id``: the
    run ``spec`` is for (None: a run not created yet, which holds no file)."""
    if (
        existing.run_id != run_id
        or existing.size != spec.size
        or (spec.adler32 and existing.adler32 != spec.adler32)
        or (spec.md5 and existing.md5 and existing.md5 != spec.md5)
    ):
        return CatalogConflict(
            f"file {spec.scope}:{spec.name} is already in the catalogue with run id {existing.run_id}, "
            f"size {existing.size}, adler32 {existing.adler32}; refusing to overwrite it with "
            f"run id {run_id}, size {spec.size}, adler32 {spec.adler32} (a DID names one content forever: "
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
            err = _conflict(existing[(spec.scope, spec.name)], run.id, spec)
            if err is not None:
                raise err
    new = [f for f in specs if (f.scope, f.name) not in existing]
    if not new:
        return 0
    rows = [
        {
            "run_id": run.id,
            "scope": f.scope,
            "name": f.name,
            "size": f.size,
            "adler32": f.adler32,
            "md5": f.md5,
            "closed_at": f.closed_at,
            "created_at": utcnow(),
        }
        for f in new
    ]
    inserted = insert_ignore(session, RunFile.__table__, rows)  # type: ignore[arg-type]
    if inserted != len(new):
        # Another writer recorded some of these DIDs (under another run) since our check.
        raced = _existing(session, new)
        for spec in new:
            err = _conflict(raced[(spec.scope, spec.name)], run.id, spec)
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
    under each run's row lock, the version counter bumped once per run written), with a
    handful of statements for the whole batch instead of five or six per run: one locked
    SELECT of the runs that exist, one SELECT of the files already recorded, one INSERT of
    the new runs *with their final values* (returning their ids), one INSERT of the new
    files, and an UPDATE only for runs that existed before. Rows are read as plain rows,
    not ORM objects: building a batch's worth of objects costs more than the queries.
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
    table: Table = Run.__table__  # type: ignore[assignment]
    before = _locked_runs(session, table, keys)
    # Optimistic first: a bulk write is almost always of files the catalogue has not seen,
    # and then the unique key on (scope, name) is the duplicate check, for free. If the
    # INSERT skips any file, the savepoint undoes the attempt and the batch is written
    # again with the explicit check (one SELECT of the batch's files), which tells a
    # harmless repeat from a conflict and counts only the new files.
    try:
        with session.begin_nested():
            return _write(session, table, batch, before, specs_of, None)
    except _FilesExisted:
        pass
    return _write(session, table, batch, before, specs_of, _existing(session, everything))


class _FilesExisted(Exception):
    """The optimistic INSERT met files already recorded: redo the batch with the check."""


def _write(
    session: Session,
    table: Table,
    batch: list[RunFiles],
    before: dict[tuple[str, int], Any],
    specs_of: dict[tuple[str, int], list[FileSpec]],
    existing: dict[tuple[str, str], Any] | None,
) -> int:
    """The batch's writes; ``existing``: the recorded files among the batch's, or None to
    assume there are none (and raise :class:`_FilesExisted` if that was wrong)."""
    now = utcnow()
    new_keys: set[str] = set()
    new_runs: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    added: dict[tuple[str, int], list[FileSpec]] = {}
    for b in batch:
        key = (b.experiment, b.run_number)
        row = before.get(key)
        new = _new_files(session, key, row.id if row is not None else None, specs_of[key], existing or {})
        if new:
            added[key] = new
        fields = b.fields or {}
        conditions = fields.get("conditions") or {}
        n_new, bytes_new = len(new), sum(f.size for f in new)
        if row is None:
            # A run this batch creates: inserted with its final values, so it needs no UPDATE.
            # Its version is what upsert_run + add_files would leave (1, +1 if anything was written).
            values = {k: fields.get(k) for k in _RUN_FIELDS} | {"run_type": fields.get("run_type") or "physics"}
            written = bool(new or conditions or any(fields.get(k) is not None for k in _RUN_FIELDS[1:]))
            new_runs.append(
                values
                | {
                    "experiment": b.experiment,
                    "run_number": b.run_number,
                    "conditions": dict(conditions),
                    "state": RunState.RECORDING.value,
                    "state_changed_at": now,
                    "n_files": n_new,
                    "total_bytes": bytes_new,
                    "created_at": now,
                    "updated_at": now,
                    "version": 2 if written else 1,
                }
            )
            new_keys.update(conditions)
            continue
        change = {k: fields[k] for k in _RUN_FIELDS if fields.get(k) is not None and row._mapping[k] != fields[k]}
        if conditions:
            old = row.conditions or {}
            merged = {**old, **conditions}
            if merged != old:
                change["conditions"] = merged
            new_keys.update(k for k in conditions if k not in old)
        if change or new:
            values = {k: row._mapping[k] for k in (*_RUN_FIELDS, "conditions")} | change
            updates.append(
                {f"b_{k}": v for k, v in values.items()}
                | {
                    "b_id": row.id,
                    "b_version": row.version,
                    "b_new_version": row.version + 1,
                    "b_updated_at": now,
                    "b_n_files": row.n_files + n_new,
                    "b_total_bytes": row.total_bytes + bytes_new,
                }
            )
    insert_ignore(session, ConditionKey.__table__, [{"key": k} for k in sorted(new_keys)])  # type: ignore[arg-type]
    run_ids = {key: row.id for key, row in before.items()}
    if new_runs:
        # Fields no new run sets are left out of the INSERT (NULL by default): a conversion less per row.
        unset = [k for k in _RUN_FIELDS[1:] if all(r[k] is None for r in new_runs)]
        new_runs = [{k: v for k, v in r.items() if k not in unset} for r in new_runs] if unset else new_runs
        new_runs.sort(key=lambda r: (r["experiment"], r["run_number"]))  # one lock order for every writer
        made = insert_ignore_returning(session, table, new_runs, [table.c.id, table.c.experiment, table.c.run_number])
        if len(made) != len(new_runs):
            # Another writer created some of these runs since our SELECT: start again (the
            # retry finds them and takes the path of existing runs).
            raise StaleDataError(f"{len(new_runs) - len(made)} run(s) were created concurrently; retry")
        run_ids.update({(str(e), int(n)): int(i) for i, e, n in made})
    inserted = _insert_files(session, added, run_ids, now, checked=existing is not None)
    if updates:
        _update_runs(session, table, updates, before)
    return inserted


def _locked_runs(session: Session, table: Table, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    """The runs of ``keys`` that exist, as plain rows, locked (``FOR UPDATE``) in id order, so
    that two writers never deadlock on each other's runs."""
    by_experiment: dict[str, list[int]] = {}
    for experiment, number in keys:
        by_experiment.setdefault(experiment, []).append(number)
    found: dict[tuple[str, int], Any] = {}
    for experiment, numbers in sorted(by_experiment.items()):
        for i in range(0, len(numbers), 1000):
            # experiment = ? AND run_number IN (...): a range on the unique index.
            stmt = (
                select(table)
                .where(table.c.experiment == experiment, table.c.run_number.in_(numbers[i : i + 1000]))
                .order_by(table.c.id)
                .with_for_update()
            )
            found.update({(r.experiment, r.run_number): r for r in session.execute(stmt)})
    return found


def _new_files(
    session: Session,
    key: tuple[str, int],
    run_id: int | None,
    specs: list[FileSpec],
    existing: dict[tuple[str, str], Any],
) -> list[FileSpec]:
    """The files of ``specs`` not yet recorded; raises on one recorded with other content."""
    if not existing:
        return specs
    new = []
    for spec in specs:
        old = existing.get((spec.scope, spec.name))
        if old is None:
            new.append(spec)
            continue
        err = _conflict(old, run_id, spec)
        if err is None:
            continue
        if run_id is None and _run_key(session, old.run_id) == key:
            # The run did not exist when we looked, and now holds this file: another writer
            # recorded the same run meanwhile. Start again rather than call it a conflict.
            raise StaleDataError(f"run {key[0]}/{key[1]} was recorded concurrently; retry")
        raise err
    return new


def _run_key(session: Session, run_id: int) -> tuple[str, int] | None:
    row = session.execute(select(Run.experiment, Run.run_number).where(Run.id == run_id)).one_or_none()
    return None if row is None else (str(row[0]), int(row[1]))


def _insert_files(
    session: Session,
    added: dict[tuple[str, int], list[FileSpec]],
    run_ids: dict[tuple[str, int], int],
    now: dt.datetime,
    *,
    checked: bool,
) -> int:
    """One multi-row INSERT of the new files; raises if some were recorded already (``checked``:
    the batch was checked against the catalogue, so another writer recorded them meanwhile)."""
    specs = [f for fs in added.values() for f in fs]
    # Optional columns no file of the batch has are left out (NULL by default): every row of an
    # executemany has the same keys, and a column less is a conversion less per row.
    optional = [k for k in ("adler32", "md5", "closed_at") if any(getattr(f, k) is not None for f in specs)]
    rows = [
        {"run_id": run_ids[key], "scope": f.scope, "name": f.name, "size": f.size, "created_at": now}
        | {k: getattr(f, k) for k in optional}
        for key, fs in added.items()
        for f in fs
    ]
    inserted = insert_ignore(session, RunFile.__table__, rows)  # type: ignore[arg-type]
    if inserted != len(rows) and not checked:
        raise _FilesExisted
    if inserted != len(rows):
        raced = _existing(session, specs)
        for key, fs in added.items():
            for spec in fs:
                err = _conflict(raced[(spec.scope, spec.name)], run_ids[key], spec)
                if err is not None:
                    raise err
        raise CatalogConflict(f"{len(rows) - inserted} file(s) were recorded concurrently; retry")
    return inserted


_WRITTEN = (*_RUN_FIELDS, "conditions", "n_files", "total_bytes", "updated_at")


def _update_runs(session: Session, table: Table, params: list[dict[str, Any]], before: dict[Any, Any]) -> None:
    """The existing runs' new fields and counters, with their version bumped.

    A run object this session loaded earlier takes the written values as its committed state
    (cheaper than expiring it, which would cost the caller a SELECT on next access).
    """
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        _upsert_runs_mysql(session, table, params, {row.id: row for row in before.values()})
    else:
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
            .values(
                {c: bindparam(f"b_{c}", type_=table.c[c].type) for c in _WRITTEN}
                | {"version": bindparam("b_new_version")}
            )
        )
        if (result := session.connection().execute(stmt, params)).rowcount != len(params):
            # A run changed since our locked read (only possible where FOR UPDATE is a no-op):
            # the transaction is retried whole, as for the ORM's own version check.
            raise StaleDataError(f"{len(params) - result.rowcount} run(s) changed concurrently; retry")
    for p in params:
        run = session.identity_map.get(Session.identity_key(Run, p["b_id"]))
        if run is not None:
            for key in _WRITTEN:
                set_committed_value(run, key, p[f"b_{key}"])
            set_committed_value(run, "version", p["b_new_version"])


def _upsert_runs_mysql(session: Session, table: Table, params: list[dict[str, Any]], by_id: dict[int, Any]) -> None:
    """MariaDB: the runs' UPDATEs as one multi-row ``INSERT ... ON DUPLICATE KEY UPDATE``.

    An executemany UPDATE is one round trip per run there; this is one statement. Every row
    exists and is held under this transaction's ``FOR UPDATE`` lock (taken in
    :func:`add_runs_files`), so no other writer can have changed it and the version check of
    the UPDATE path has nothing to catch; the version is still bumped.
    """
    rows = []
    for p in params:
        row = dict(by_id[p["b_id"]]._mapping)
        row.update({k[2:]: v for k, v in p.items() if k[2:] in row and k not in ("b_id", "b_version")})
        row["version"] = p["b_new_version"]
        rows.append(row)
    stmt = mysql.insert(table).values(rows)
    session.connection().execute(stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in (*_WRITTEN, "version")}))
