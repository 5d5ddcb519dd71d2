"""Run catalogue: copies that land on the S3 and TAPE RSEs move files and runs along the life cycle.

Three Rucio events say that data reached an RSE: ``transfer-done`` (one file, its
destination RSE), ``datasetlock_ok`` (a whole dataset on one RSE) and ``rule_ok`` (a
rule is satisfied; the event names no RSE, so the rule's RSEs are asked from Rucio).
Each records per-file, per-RSE availability times, then moves the run to ON_S3 / ON_TAPE
once all its files are there. A transition the life cycle refuses (a late S3 event for
a run already on tape, a run the uploader has not yet marked UPLOADED) leaves the run
where it is: the availability rows are still kept, so nothing that happened is lost.

Events are trusted only as far as their publisher: a well-formed but false ``transfer-done``
must not put a run ON_TAPE. The availability rows record what events *said*; the run's
state, which decides irreversible steps later (releasing DAQ copies, reconstruction), moves
only once Rucio itself lists an AVAILABLE replica of every file of the run on that RSE
(one Rucio query per transition, not per event). When Rucio disagrees the run stays where it
is, with a warning; the real events, which come later, move it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile, utcnow
from rucio_inlet.catalog_states import TRANSITIONS, IllegalTransition, RunState
from sqlalchemy import select
from sqlalchemy.orm import Session

from inlet.catalog import runs as catalog_runs
from inlet.catalog.upsert import insert_ignore
from inlet.config import ListenerSettings
from inlet.listener.events import Event, parse_time
from inlet.listener.handlers.base import HandlerContext


class CatalogHandler:
    name = "catalog"

    def __init__(self, settings: ListenerSettings, options: dict[str, Any]) -> None:
        self.s3 = set(options.get("s3_rses", settings.s3_rses))
        self.tape = set(options.get("tape_rses", settings.tape_rses))

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        session = ctx.session
        when = event.created()
        if event.event_type == "transfer-done":
            scope, name, rse = event.require("scope", "name", "dst-rse")
            if rse not in self.s3 | self.tape:
                return
            f = catalog_runs.find_file(session, scope, name)
            if f is None:
                ctx.log.debug("transfer-done for %s:%s: not a catalogued run file", scope, name)
                return
            at = parse_time(event.payload.get("transferred_at")) or when or utcnow()
            # The session's identity map holds objects weakly: keep the run for the whole batch,
            # or every event of the batch would load it again.
            session.info.setdefault("inlet_keep", set()).add(f.run)
            # The file row is in hand: insert its availability directly (first time wins).
            insert_ignore(session, FileAvailability.__table__, [{"file_id": f.id, "rse": rse, "available_at": at}])  # type: ignore[arg-type]
            self._advance(session, f.run, at, [rse], ctx)
        elif event.event_type == "datasetlock_ok":
            scope, name, rse = event.require("scope", "name", "rse")
            if rse in self.s3 | self.tape:
                self._did_on(session, scope, name, [rse], when, ctx)
        elif event.event_type == "rule_ok":
            scope, name, rule_id = event.require("scope", "name", "rule_id")
            if self._is_catalogued(session, scope, name):
                rses = [r for r in ctx.rucio.rule_rses(str(rule_id)) if r in self.s3 | self.tape]
                if rses:
                    self._did_on(session, scope, name, rses, when, ctx)

    def handle_batch(self, events: list[Event], ctx: HandlerContext) -> None:
        """The same effects as :meth:`handle` on each event, with set-based SQL for ``transfer-done``.

        A catch-up or a burst is mostly ``transfer-done``: for a whole batch of them this
        takes one SELECT of the files, one multi-row INSERT of their availability (first time
        wins, as before), one SELECT of their runs, then one count per (run, RSE) touched,
        instead of three statements per event. Other event types go through :meth:`handle`.
        A bad event raises here as in :meth:`handle`; the listener then redoes the batch one
        event at a time, so only that event is dead-lettered.
        """
        session = ctx.session
        wanted = self.s3 | self.tape
        transfers: list[tuple[str, str, str, dt.datetime]] = []
        for event in events:
            if event.event_type != "transfer-done":
                continue
            scope, name, rse = event.require("scope", "name", "dst-rse")
            if rse in wanted:
                at = parse_time(event.payload.get("transferred_at")) or event.created() or utcnow()
                transfers.append((str(scope), str(name), str(rse), at))
        if transfers:
            self._transfers(session, transfers, ctx)
        for event in events:
            if event.event_type != "transfer-done":
                self.handle(event, ctx)

    def _transfers(
        self, session: Session, transfers: list[tuple[str, str, str, dt.datetime]], ctx: HandlerContext
    ) -> None:
        by_scope: dict[str, list[str]] = {}
        for scope, name in sorted({(scope, name) for scope, name, _, _ in transfers}):
            by_scope.setdefault(scope, []).append(name)
        files: dict[tuple[str, str], tuple[int, int]] = {}
        for scope, names in by_scope.items():
            for start in range(0, len(names), 500):
                # scope = ? AND name IN (...): a range on the (scope, name) unique index (see _existing).
                stmt = select(RunFile.id, RunFile.run_id, RunFile.name).where(
                    RunFile.scope == scope, RunFile.name.in_(names[start : start + 500])
                )
                files.update({(scope, str(nm)): (int(fid), int(rid)) for fid, rid, nm in session.execute(stmt)})
        rows: dict[tuple[int, str], dict[str, Any]] = {}
        touched: dict[int, tuple[dt.datetime, list[str]]] = {}
        for scope, name, rse, at in transfers:
            found = files.get((scope, name))
            if found is None:
                ctx.log.debug("transfer-done for %s:%s: not a catalogued run file", scope, name)
                continue
            file_id, run_id = found
            rows.setdefault((file_id, rse), {"file_id": file_id, "rse": rse, "available_at": at})
            _, rses = touched.setdefault(run_id, (at, []))
            if rse not in rses:
                rses.append(rse)
            touched[run_id] = (at, rses)  # the latest event's time, as one event at a time would give
        if not rows:
            return
        insert_ignore(session, FileAvailability.__table__, list(rows.values()))  # type: ignore[arg-type]
        runs = session.scalars(select(Run).where(Run.id.in_(sorted(touched)))).all()
        for run in runs:
            at, rses = touched[run.id]
            self._advance(session, run, at, rses, ctx)

    @staticmethod
    def _is_catalogued(session: Session, scope: str, name: str) -> bool:
        if catalog_runs.find_file(session, scope, name) is not None:
            return True
        return _run_of_dataset(session, scope, name) is not None

    def _did_on(
        self, session: Session, scope: str, name: str, rses: list[str], when: dt.datetime | None, ctx: HandlerContext
    ) -> None:
        f = catalog_runs.find_file(session, scope, name)
        if f is not None:
            run, files = f.run, [f]
        else:
            found = _run_of_dataset(session, scope, name)
            if found is None:
                ctx.log.debug("%s:%s is neither a catalogued file nor a run dataset", scope, name)
                return
            run, files = found, list(found.files)
        for rse in rses:
            for rf in files:
                catalog_runs.mark_available(session, rf.scope, rf.name, rse, when)
        self._advance(session, run, when, rses, ctx)

    def _advance(
        self, session: Session, run: Run, when: dt.datetime | None, touched: list[str], ctx: HandlerContext
    ) -> None:
        """Take every step whose RSE class now holds all of the run's files.

        Only the RSEs this event touched can have become complete, so only they are counted,
        except right after a step: then the next class may already be complete (its events
        came first and could not move the run yet), and all its RSEs are counted.
        """
        check = set(touched)
        for target, rses in ((RunState.ON_S3, self.s3), (RunState.ON_TAPE, self.tape)):
            candidates = sorted(rses & check)
            # The cheap test on the loaded state first; transition() re-checks under a lock.
            if run.n_files == 0 or not candidates or target not in TRANSITIONS[run.state]:
                continue
            complete = [r for r in candidates if catalog_runs.files_on(session, run, r) >= run.n_files]
            complete = [r for r in complete if _rucio_agrees(run, r, ctx)]
            if complete:
                try:
                    catalog_runs.transition(
                        session, run, target, reason=f"all {run.n_files} files on {complete[0]}", at=when
                    )
                except IllegalTransition:
                    continue  # another writer moved the run meanwhile: nothing left to do here
                check = set(self.s3 | self.tape)


def _rucio_agrees(run: Run, rse: str, ctx: HandlerContext) -> bool:
    """True if Rucio lists an AVAILABLE replica on ``rse`` for every file of ``run``."""
    files = [(f.scope, f.name) for f in run.files]
    available = ctx.rucio.available_on(rse, files)
    missing = [f for f in files if f not in available]
    if missing:
        ctx.log.warning(
            "run %s: events say all %d files are on %s, but Rucio lists %d of them as not AVAILABLE there "
            "(first: %s:%s); the run stays %s (a forged or premature event?)",
            run.label,
            len(files),
            rse,
            len(missing),
            missing[0][0],
            missing[0][1],
            run.state,
        )
        return False
    return True


def _run_of_dataset(session: Session, scope: str, name: str) -> Run | None:
    return session.scalars(select(Run).where(Run.scope == scope, Run.dataset == name)).one_or_none()
