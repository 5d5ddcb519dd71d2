"""One batch of DAQ files of one run: checksum and place, register in bulk, catalogue, announce.

Order matters for safety. Bytes are placed first (a crash leaves at most an unregistered
copy, which the retry finds and accepts if identical). Rucio registration is one
``attach_dids`` call with the first RSE for the whole batch: the server registers the replicas
and attaches them to the run dataset in one transaction, so all of a batch is registered or
none of it. Only when Rucio says some already exist (a retried batch) does one bulk lookup
accept the identical ones, refuse the different ones, and register the rest with
``add_replicas`` and ``attach_dids_to_dids`` (``Uploader._register``). The
catalogue rows, the ``file-registered`` events (as outbox rows) and the run's collections
are written in one catalogue transaction; the events are published right after commit and
marked sent, and any left unsent stay in the outbox for the next batch or the listener's
outbox sweep. Only then are DAQ copies recorded as awaiting release.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, OutboxMessage, RunFile, utcnow
from rucio_inlet.catalog_states import RunState
from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from inlet.catalog import ledger
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog, open_catalog
from inlet.catalog.upsert import insert_ignore
from inlet.config import RulePolicy, Settings
from inlet.event_contract import FILE_REGISTERED, envelope, file_event_id
from inlet.uploader.daq_release import Pending, PendingStore
from inlet.uploader.digest import digest_stream
from inlet.uploader.events import Publisher, file_quarantined
from inlet.uploader.plan import BadInput, FilePlan, RunCollections, plan_file, run_collections, stream_policy
from inlet.uploader.quarantine import quarantine_info
from inlet.uploader.roots import DaqFile, DaqRoots, Refused, worker_roots
from inlet.uploader.sidecar import BadSidecar, check_sidecar
from inlet.uploader.storage import AlreadyStoredDifferently, ChecksumMismatch, FileChanged, FirstRse, Placed

log = logging.getLogger(__name__)

OUTBOX_KIND = "inlet-event"


@dataclass
class BatchResult:
    registered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: path -> reason; files left in place (they can be retried or fixed).
    failed: dict[str, str] = field(default_factory=dict)
    #: path -> reason; files moved to the quarantine directory.
    quarantined: dict[str, str] = field(default_factory=dict)
    #: files that changed while read: to retry later.
    retry: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0
    #: "closed" (the file's mtime) or "submitted" (queued by api.submit) -> seconds to registration.
    latency: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "skipped": self.skipped,
            "failed": self.failed,
            "quarantined": self.quarantined,
            "retry": self.retry,
            "bytes": self.bytes,
            "latency": self.latency,
        }


def state_path(settings: Settings, p: Path) -> Path:
    return p if p.is_absolute() else settings.lake.state_dir / p


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


class Uploader:
    """Holds the per-process connections (Rucio client, catalogue, broker) between batches."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.uploader_settings = settings.uploader
        self._catalog = catalog
        self.publisher = publisher or Publisher(settings.broker)
        self._client: Any = None
        self._first: FirstRse | None = None
        self._collections_done: set[tuple[str, str]] = set()
        self.pending = PendingStore(state_path(settings, self.uploader_settings.state_dir) / "pending")
        self.quarantine_dir = state_path(settings, self.uploader_settings.quarantine_dir)

    # -- lazily opened resources ---------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = open_catalog(self.settings.catalog_url())
        return self._catalog

    @property
    def client(self) -> Any:
        if self._client is None:
            from rucio.client import Client

            self._client = Client()
        return self._client

    @property
    def first(self) -> FirstRse:
        if self._first is None:
            self._first = FirstRse(self.uploader_settings.first_rse)
        return self._first

    # -- the batch -----------------------------------------------------------------------
    def upload_batch(
        self, items: list[dict[str, Any]], run: int, stream: str, experiment: str | None = None
    ) -> BatchResult:
        """Upload ``items`` ({"path", optional "sidecar": {run, adler32, md5, size}}).

        Every item is input (a task message may be forged): its path must be a regular file
        inside the DAQ roots (:mod:`inlet.uploader.roots`), its sidecar must pass
        :func:`inlet.uploader.sidecar.check_sidecar`, its name the naming schema. A file that
        fails is quarantined on its own (moved only if it is a regular file inside the roots);
        the rest of the batch goes on.
        """
        res = BatchResult()
        coll = run_collections(self.settings, run, stream, experiment)
        roots = worker_roots(self.settings)
        plans: list[tuple[FilePlan, dict[str, Any], DaqFile]] = []
        submitted = {str(i["path"]): i["submitted_at"] for i in items if i.get("submitted_at")}
        for item in items:
            given = item["path"]
            try:
                daq = roots.check(given)
            except Refused as exc:
                self._quarantine(res, given, str(exc), exc.kind, coll, roots)
                continue
            path = daq.path
            try:
                side = check_sidecar(item.get("sidecar")).as_dict()
            except BadSidecar as exc:
                self._quarantine(res, path, f"{path}: bad sidecar: {exc}", "bad-sidecar", coll, roots)
                continue
            if side.get("run", run) != run:
                why = f"{path}: bad sidecar: it says run {side['run']}, the batch is run {run}"
                self._quarantine(res, path, why, "bad-sidecar", coll, roots)
                continue
            try:
                plan = plan_file(path, coll, self.settings.naming)
            except BadInput as exc:
                self._quarantine(res, path, str(exc), "bad-name", coll, roots)
                continue
            if not os.access(daq.real, os.R_OK):
                self._quarantine(res, path, f"{path} is not a readable regular file", "unreadable", coll, roots)
                continue
            plans.append((plan, side, daq))
        if not plans:
            return res
        plans = self._skip_known(plans, res, roots)
        if not plans:
            self._file_rules(coll, res.skipped)
            return res
        placed = self._place(plans, res, roots)
        if not placed:
            self._file_rules(coll, res.skipped)
            return res
        self._ensure_collections(coll)
        registered = self._register(coll, placed, res)
        if registered:
            self._record(coll, registered, res)
            at = time.time()
            res.latency["closed"] = [at - pl.state.mtime_ns / 1e9 for _, pl in registered]
            res.latency["submitted"] = [
                at - float(submitted[str(p.path)]) for p, _ in registered if str(p.path) in submitted
            ]
        # After registration and its event: a rule is replication, not registration, and costs the
        # server ~50 ms per file. A batch retried after a crash in between finds its files known
        # (skipped) and adds whatever rule is missing.
        self._file_rules(coll, [p.did for p, _ in registered] + res.skipped)
        return res

    def _quarantine(
        self, res: BatchResult, path: str | Path, reason: str, kind: str, coll: RunCollections, roots: DaqRoots
    ) -> None:
        info = quarantine_info(path, self.quarantine_dir, reason, kind, roots)
        res.quarantined[str(path)] = reason
        ev = file_quarantined(info, experiment=coll.experiment, run=coll.run, stream=coll.stream)
        try:
            # Through the outbox, like file-registered: if the broker is away now, the listener's
            # outbox sweep sends it later.
            self.catalog.transaction(lambda s: ledger.enqueue(s, OUTBOX_KIND, ev, ev["id"]))
        except Exception as exc:
            log.warning("file-quarantined event not queued in the catalogue outbox (%s); publishing it directly", exc)
            try:
                self.publisher.publish([ev])
            except Exception as exc2:
                log.error("file-quarantined event for %s lost (%s); the ALARM line and reason file remain", path, exc2)
            return
        self._announce([ev])

    def _skip_known(
        self, plans: list[tuple[FilePlan, dict[str, Any], DaqFile]], res: BatchResult, roots: DaqRoots
    ) -> list[tuple[FilePlan, dict[str, Any], DaqFile]]:
        """Files the catalogue already has: identical content is a no-op, other content is refused."""
        keys = [(p.scope, p.name) for p, _, _ in plans]
        with self.catalog.session() as session:
            known = {
                (f.scope, f.name): (f.size, f.adler32)
                for f in session.scalars(select(RunFile).where(tuple_(RunFile.scope, RunFile.name).in_(keys)))
            }
        left = []
        for plan, side, daq in plans:
            have = known.get((plan.scope, plan.name))
            if have is None:
                left.append((plan, side, daq))
                continue
            try:
                with daq.open() as fh:
                    d = digest_stream(fh)
            except Refused as exc:
                self._quarantine(res, plan.path, str(exc), exc.kind, plan.collections, roots)
                continue
            except OSError as exc:
                why = f"{plan.path} is unreadable: {exc}"
                self._quarantine(res, plan.path, why, "unreadable", plan.collections, roots)
                continue
            if (d.size, d.adler32) == have:
                res.skipped.append(plan.did)
            else:
                res.failed[str(plan.path)] = (
                    f"{plan.did} is already registered with size {have[0]} adler32 {have[1]}; this file has size "
                    f"{d.size} adler32 {d.adler32}: refused, a DID never changes content (rename the new file)"
                )
        return left

    def _place(
        self, plans: list[tuple[FilePlan, dict[str, Any], DaqFile]], res: BatchResult, roots: DaqRoots
    ) -> list[tuple[FilePlan, Placed]]:
        from inlet.uploader.app_runtime import slots

        pfns = self.first.pfns([(p.scope, p.name) for p, _, _ in plans])
        placed: list[tuple[FilePlan, Placed]] = []
        with slots(self.settings).hold(self.uploader_settings.first_rse):
            for plan, side, daq in plans:
                try:
                    placed.append(
                        (plan, self.first.put(daq.real, plan.scope, plan.name, pfns[plan.did], side, daq.open))
                    )
                except Refused as exc:
                    # Swapped for a symlink, a FIFO or another file since the check: never read.
                    self._quarantine(res, plan.path, str(exc), exc.kind, plan.collections, roots)
                except FileChanged as exc:
                    log.warning("%s", exc)
                    res.retry.append({"path": str(plan.path), "sidecar": side})
                except (ChecksumMismatch, AlreadyStoredDifferently) as exc:
                    log.error("%s", exc)
                    res.failed[str(plan.path)] = str(exc)
                except PermissionError as exc:
                    why = f"{plan.path} is unreadable: {exc}"
                    self._quarantine(res, plan.path, why, "unreadable", plan.collections, roots)
        return placed

    def _ensure_collections(self, coll: RunCollections) -> None:
        """Create the run dataset (with metadata and the stream's rules) and container once."""
        from rucio.common.exception import DataIdentifierAlreadyExists, Duplicate, DuplicateContent

        key = (coll.scope, coll.dataset)
        if key in self._collections_done:
            return
        policy = stream_policy(self.settings, coll.stream)
        rules = []
        for r in policy.rules:
            if r.per_file:
                continue  # placed on every file by _file_rules
            rule: dict[str, Any] = {
                "copies": r.copies,
                "rse_expression": r.rse_expression,
                "lifetime": r.lifetime,
                "notify": r.notify,
                "activity": r.activity,
                "grouping": self._grouping(r),
                "account": self.settings.rucio.account,
            }
            if r.delay_injection:
                rule["delay_injection"] = r.delay_injection
            rules.append(rule)
        # The run-level metadata lives in the catalogue (Rucio shows it through rucio_inlet.runmeta):
        # create the run row and name its dataset before Rucio is asked about it.
        self.catalog.transaction(
            lambda s: catalog_runs.upsert_run(
                s,
                coll.experiment,
                coll.run,
                scope=coll.scope,
                dataset=coll.dataset,
                conditions={"stream": coll.stream},
            )
        )
        try:
            self.client.add_dataset(coll.scope, coll.dataset, meta={"run_number": coll.run}, rules=rules)
            log.info("created run dataset %s:%s with %d rules", coll.scope, coll.dataset, len(rules))
        except DataIdentifierAlreadyExists:
            pass
        if coll.container:
            with contextlib.suppress(DataIdentifierAlreadyExists):
                self.client.add_container(coll.scope, coll.container)
            # Two workers starting the same run race here; the loser's Duplicate means "done".
            with contextlib.suppress(DuplicateContent, Duplicate):
                self.client.attach_dids_to_dids(
                    [
                        {
                            "scope": coll.scope,
                            "name": coll.container,
                            "dids": [{"scope": coll.scope, "name": coll.dataset}],
                        }
                    ],
                    ignore_duplicate=True,
                )
        self._collections_done.add(key)

    def _grouping(self, rule: RulePolicy) -> str:
        """The Rucio grouping of a run-dataset rule (see ``RulePolicy.grouping``).

        On each attach, Rucio's judge-evaluator looks up the oldest file of a DATASET-grouped
        rule's dataset to keep new files with it (``__oldest_file_under`` in rucio.core.rule):
        it reads all the dataset's contents, so its cost per attach grows with the run and a
        run of 14,400 files slows the whole lake. With one possible placement there is nothing
        to keep together, and with notify 'N' no datasetlock_ok is awaited: NONE is then the
        same placement at a cost that does not grow.
        """
        if rule.grouping != "auto":
            return rule.grouping
        if rule.notify != "N":
            return "DATASET"  # rule_ok/datasetlock_ok may be awaited (reconstruction, release)
        try:
            rses = list(self.client.list_rses(rule.rse_expression))
        except Exception as exc:
            log.warning(
                "listing the RSEs of %r failed (%s); its dataset rule keeps DATASET grouping", rule.rse_expression, exc
            )
            return "DATASET"
        return "NONE" if len(rses) == rule.copies else "DATASET"

    def _register(
        self, coll: RunCollections, placed: list[tuple[FilePlan, Placed]], res: BatchResult
    ) -> list[tuple[FilePlan, Placed]]:
        """One attach-with-replicas call for the batch.

        The common case (none of the files known to Rucio yet) costs exactly that call: Rucio's
        attach given an RSE registers the replicas and attaches them to the run dataset in one
        server transaction, so a failure (a Rucio restart mid-batch) leaves all of the batch
        registered or none of it, and a one-file batch pays one round trip, not two. Only if
        Rucio says some already exist (a retried batch, a crash after registration) does one
        bulk lookup sort out which are identical (accepted) and which differ (refused), and
        the attach is made on its own.
        """
        from rucio.common.exception import (
            DataIdentifierAlreadyExists,
            Duplicate,
            FileAlreadyExists,
            FileConsistencyMismatch,
            FileReplicaAlreadyExists,
        )

        ok = list(placed)
        attached = True
        try:
            self.client.attach_dids(
                coll.scope, coll.dataset, [self._replica(p, pl) for p, pl in ok], rse=self.uploader_settings.first_rse
            )
        except (
            DataIdentifierAlreadyExists,
            Duplicate,
            FileAlreadyExists,
            FileConsistencyMismatch,
            FileReplicaAlreadyExists,
        ):
            ok = self._register_known(placed, res)
            attached = False
        if ok and not attached:
            self.client.attach_dids_to_dids(
                [
                    {
                        "scope": coll.scope,
                        "name": coll.dataset,
                        "dids": [{"scope": p.scope, "name": p.name} for p, _ in ok],
                    }
                ],
                ignore_duplicate=True,
            )
        return ok

    def _file_rules(self, coll: RunCollections, names: list[str]) -> None:
        """The stream's per-file rules on DIDs ``scope:name``: one call per rule for the whole batch.

        Rucio makes one rule per DID of the call (a per-file rule, as if made one at a time), in
        one server transaction, at about a third of the server's cost per rule of one call per
        file (the call's own work, RSE expression, account and limits, is paid once): the bigger
        the batch, the cheaper each file's rule.
        """
        from rucio.common.exception import DuplicateRule

        rules = [r for r in stream_policy(self.settings, coll.stream).rules if r.per_file]
        if not rules or not names:
            return
        dids = [dict(zip(("scope", "name"), n.split(":", 1), strict=True)) for n in names]
        for r in rules:
            args: dict[str, Any] = {
                "copies": r.copies,
                "rse_expression": r.rse_expression,
                "lifetime": r.lifetime,
                "notify": r.notify,
                "activity": r.activity,
                "grouping": "NONE",
                "account": self.settings.rucio.account,
            }
            if r.delay_injection:
                args["delay_injection"] = r.delay_injection
            try:
                self.client.add_replication_rule(dids=dids, **args)
            except DuplicateRule:
                # A retried batch: some files have it already, and Rucio refuses the whole call.
                # One listing per file finds them; the rest get theirs in one call again.
                missing = [d for d in dids if not self._has_rule(d, args)]
                if not missing:
                    continue
                try:
                    self.client.add_replication_rule(dids=missing, **args)
                except DuplicateRule:
                    # Another worker's retry of the same files got there meanwhile: one by one.
                    for did in missing:
                        with contextlib.suppress(DuplicateRule):
                            self.client.add_replication_rule(dids=[did], **args)

    def _has_rule(self, did: dict[str, str], args: dict[str, Any]) -> bool:
        """Whether ``did`` has the rule ``args`` describes (what Rucio's DuplicateRule compares:
        the DID, account, RSE expression and copies)."""
        return any(
            (rule.get("account"), rule.get("rse_expression"), int(rule.get("copies") or 0))
            == (args["account"], args["rse_expression"], args["copies"])
            for rule in self.client.list_did_rules(did["scope"], did["name"])
        )

    @staticmethod
    def _replica(plan: FilePlan, pl: Placed) -> dict[str, Any]:
        d = pl.digest
        return {"scope": plan.scope, "name": plan.name, "bytes": d.size, "adler32": d.adler32, "md5": d.md5}

    def _register_known(self, placed: list[tuple[FilePlan, Placed]], res: BatchResult) -> list[tuple[FilePlan, Placed]]:
        from rucio.common.exception import DataIdentifierNotFound

        dids = [{"scope": p.scope, "name": p.name} for p, _ in placed]
        try:
            existing = {(m["scope"], m["name"]): m for m in self.client.get_metadata_bulk(dids)}
        except DataIdentifierNotFound:
            existing = {}
        new, ok = [], []
        for plan, pl in placed:
            m = existing.get((plan.scope, plan.name))
            if m is not None and (int(m.get("bytes") or -1), m.get("adler32")) != (pl.digest.size, pl.digest.adler32):
                res.failed[str(plan.path)] = (
                    f"{plan.did} already exists in Rucio with {m.get('bytes')} bytes adler32 {m.get('adler32')}, "
                    f"not {pl.digest.size} bytes adler32 {pl.digest.adler32}: refused, never overwritten"
                )
                continue
            ok.append((plan, pl))
            if m is None:
                new.append(self._replica(plan, pl))
        if new:
            self.client.add_replicas(self.uploader_settings.first_rse, new)
        return ok

    def _record(self, coll: RunCollections, ok: list[tuple[FilePlan, Placed]], res: BatchResult) -> None:
        now = utcnow()
        rse = self.uploader_settings.first_rse
        events = [
            envelope(
                FILE_REGISTERED,
                {
                    "scope": p.scope,
                    "name": p.name,
                    "did": p.did,
                    "experiment": coll.experiment,
                    "run": coll.run,
                    "stream": coll.stream,
                    "dataset": f"{coll.scope}:{coll.dataset}",
                    "bytes": pl.digest.size,
                    "adler32": pl.digest.adler32,
                    "md5": pl.digest.md5,
                    "rse": rse,
                    "pfn": pl.pfn,
                    "closed_at": _iso(dt.datetime.fromtimestamp(pl.state.mtime_ns / 1e9, dt.UTC)),
                    "registered_at": _iso(now),
                },
                file_event_id(FILE_REGISTERED, p.scope, p.name),
            )
            for p, pl in ok
        ]

        def work(s: Session) -> None:
            run = catalog_runs.get_run(s, coll.experiment, coll.run)
            specs = [
                catalog_runs.FileSpec(
                    p.scope,
                    p.name,
                    pl.digest.size,
                    pl.digest.adler32,
                    pl.digest.md5,
                    dt.datetime.fromtimestamp(pl.state.mtime_ns / 1e9, dt.UTC),
                )
                for p, pl in ok
            ]
            catalog_runs.add_files(s, run, specs)
            keys = [(p.scope, p.name) for p, _ in ok]
            s.execute(
                update(RunFile)
                .where(tuple_(RunFile.scope, RunFile.name).in_(keys), RunFile.registered_at.is_(None))
                .values(uploaded_at=now, registered_at=now)
            )
            ids = s.scalars(select(RunFile.id).where(tuple_(RunFile.scope, RunFile.name).in_(keys))).all()
            insert_ignore(
                s,
                FileAvailability.__table__,  # type: ignore[arg-type]
                [{"file_id": i, "rse": rse, "available_at": now} for i in ids],
            )
            for ev in events:
                ledger.enqueue(s, OUTBOX_KIND, ev, ev["id"])

        self.catalog.transaction(work)
        res.registered.extend(p.did for p, _ in ok)
        res.bytes += sum(pl.digest.size for _, pl in ok)
        if stream_policy(self.settings, coll.stream).release:
            for p, pl in ok:
                self.pending.add(
                    Pending(p.scope, p.name, str(p.path), pl.digest.size, pl.digest.adler32, pl.digest.md5)
                )
        self._announce(events)

    def _announce(self, events: list[dict[str, Any]]) -> None:
        try:
            self.publisher.publish(events)
        except Exception as exc:
            log.warning("publishing %d inlet events failed (%s); they stay in the outbox", len(events), exc)
            return
        ids = [ev["id"] for ev in events]
        self.catalog.transaction(
            lambda s: s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.idempotency_key.in_(ids), OutboxMessage.sent_at.is_(None))
                .values(sent_at=utcnow())
            )
        )

    # -- run end -------------------------------------------------------------------------
    def end_run(self, run: int, stream: str, experiment: str | None = None, expected_files: int | None = None) -> str:
        """Close the run: dataset closed in Rucio, run CLOSED then UPLOADED in the catalogue.

        Returns the run's state; raises :class:`RunNotComplete` if fewer than
        ``expected_files`` files are registered yet (the caller retries later).
        """
        from rucio.common.exception import UnsupportedOperation

        coll = run_collections(self.settings, run, stream, experiment)

        def check(s: Session) -> int:
            return catalog_runs.get_run(s, coll.experiment, coll.run).n_files

        n = self.catalog.transaction(check)
        if expected_files is not None and n < expected_files:
            raise RunNotComplete(f"run {coll.experiment}/{run}: {n} of {expected_files} files registered so far")
        with contextlib.suppress(UnsupportedOperation):  # already closed
            self.client.set_status(coll.scope, coll.dataset, open=False)

        def advance(s: Session) -> str:
            r = catalog_runs.get_run(s, coll.experiment, coll.run)
            if r.state == RunState.RECORDING:
                catalog_runs.transition(s, r, RunState.CLOSED, reason="run ended")
            if r.state in (RunState.CLOSED, RunState.UPLOAD_FAILED):
                catalog_runs.transition(s, r, RunState.UPLOADED, reason=f"{r.n_files} files registered")
            return r.state.value

        return self.catalog.transaction(advance)


class RunNotComplete(Exception):
    """Run end requested before all its files are registered."""
