"""Compare the run catalogue with Rucio and report (and optionally fix) every mismatch.

Rucio is the authority on what exists where; the catalogue is the authority on runs. So
``apply`` only ever changes the catalogue, and only where Rucio's answer is unambiguous:

- ``missing_in_rucio``: the catalogue says a file was registered, Rucio has no such DID.
  apply: clear the file's ``registered_at`` and its availability rows (the uploader will
  register it again). Fix otherwise: re-run the upload of that file.
- ``content_mismatch``: size or adler32 differ between the catalogue and Rucio. Never
  applied (which side is right needs a human): compare with the DAQ's copy, re-upload.
- ``stale_availability``: the catalogue says the file is on an RSE, Rucio has no
  AVAILABLE replica there. apply: delete that availability row.
- ``missing_availability``: Rucio has an AVAILABLE replica the catalogue does not know.
  apply: record it (time: now, as Rucio's list API does not give the replica's time).
- ``not_registered``: the DID exists in Rucio but the catalogue has no ``registered_at``.
  apply: set it to now.
- ``dataset_missing``: the run's dataset DID is not in Rucio. Fix: the uploader creates it
  with the run's first file; create it with ``rucio did add``.
- ``invalid_in_rucio``: Rucio's schema refuses the run's scope or dataset name, so none of
  its files can be compared. Never applied: correct the names in the catalogue.
- ``rule_not_ok``: a rule on the run's dataset is STUCK or SUSPENDED. Fix: ``rucio rule
  info ID`` and the judge-repairer; never applied by inlet.
- ``state_behind``: every file is on the tape RSE (or object store) but the run's state
  says less. apply: move the run forward through the state machine's legal steps.
- ``state_ahead``: the run's state claims a tier that not all its files reach. Never
  applied (the life cycle does not go backwards): investigate the lost replicas.

The Rucio client is imported lazily (RUCIO_CONFIG must be set first); this module is not
imported by ``inlet.catalog`` itself, which must stay loadable inside the Rucio server.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile, utcnow
from rucio_inlet.catalog_states import TRANSITIONS, RunState
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from inlet.catalog.db import Catalog
from inlet.catalog.runs import NotInCatalog

log = logging.getLogger(__name__)

#: What a state claims: every file is AVAILABLE on the RSE of that tier.
TIER_OF_STATE = {RunState.ON_S3: "s3", RunState.ON_TAPE: "tape", RunState.RECONSTRUCTED: "tape"}


@dataclass
class Mismatch:
    kind: str
    subject: str
    detail: str
    fix: str
    applied: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RucioFile:
    size: int | None
    adler32: str | None
    available_on: set[str]


class Reconciler:
    def __init__(self, catalog: Catalog, client: Any = None, s3_rse: str = "S3", tape_rse: str = "TAPE") -> None:
        if client is None:
            from rucio.client import Client

            client = Client()
        self.catalog = catalog
        self.client = client
        self.rse = {"s3": s3_rse, "tape": tape_rse}

    def rucio_files(self, dids: list[tuple[str, str]]) -> dict[tuple[str, str], RucioFile]:
        found: dict[tuple[str, str], RucioFile] = {}
        for i in range(0, len(dids), 500):
            chunk = [{"scope": s, "name": n} for s, n in dids[i : i + 500]]
            for rep in self.client.list_replicas(chunk, all_states=True):
                states = rep.get("states") or {}
                found[(rep["scope"], rep["name"])] = RucioFile(
                    rep.get("bytes"), rep.get("adler32"), {r for r, st in states.items() if st == "AVAILABLE"}
                )
        return found

    def existing_dids(self, dids: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``dids`` Rucio knows: one bulk call per 500, not a lookup per DID (a run's
        files that have no replica at all would otherwise cost a round trip each)."""
        from rucio.common.exception import DataIdentifierNotFound

        found: set[tuple[str, str]] = set()
        for i in range(0, len(dids), 500):
            chunk = [{"scope": s, "name": n} for s, n in dids[i : i + 500]]
            try:
                found.update((m["scope"], m["name"]) for m in self.client.get_metadata_bulk(chunk))
            except DataIdentifierNotFound:
                continue
        return found

    def _did_exists(self, scope: str, name: str) -> bool:
        from rucio.common.exception import DataIdentifierNotFound

        try:
            self.client.get_did(scope, name)
        except DataIdentifierNotFound:
            return False
        return True

    def run(self, experiment: str | None = None, apply: bool = False, run_number: int | None = None) -> list[Mismatch]:
        """Every mismatch of the runs selected (all, one experiment's, or those numbered
        ``run_number``: one run, read through the run-number index and its files' index)."""
        out: list[Mismatch] = []
        with self.catalog.session() as s:
            stmt = select(Run).order_by(Run.experiment, Run.run_number)
            if experiment:
                stmt = stmt.where(Run.experiment == experiment)
            if run_number is not None:
                stmt = stmt.where(Run.run_number == run_number)
            runs = s.scalars(stmt).all()
            if run_number is not None and not runs:
                raise NotInCatalog(
                    f"run {run_number}{f' of experiment {experiment}' if experiment else ''} is not in the catalogue"
                )
            for run in runs:
                out.extend(self._checked(s, run, apply))
        return out

    def _checked(self, s: Session, run: Run, apply: bool) -> list[Mismatch]:
        """One run's mismatches; a run whose names Rucio refuses is one mismatch, not the end.

        A catalogue row can name a scope or dataset that this Rucio's schema does not accept (a
        typo, a run of another Rucio instance, a test's leftover): Rucio then refuses the whole
        bulk call it appears in, so it is reported for that run and the other runs are checked.
        """
        from rucio.common.exception import InvalidObject, ScopeNotFound

        try:
            with s.begin_nested():  # an apply half done before the refusal is rolled back
                return self._run(s, run, apply)
        except (InvalidObject, ScopeNotFound) as exc:
            # Rucio's schema error spans lines (the whole JSON schema): its first line says it.
            reason = (str(exc).split("Details:")[-1].strip().splitlines() or [""])[0]
            return [
                Mismatch(
                    "invalid_in_rucio",
                    run.label,
                    f"Rucio refuses the run's names (scope {run.scope!r}, dataset {run.dataset!r}): {reason[:300]}",
                    "correct the run's scope or dataset in the catalogue to DIDs this Rucio accepts "
                    "(`rucio scope list`); never applied automatically",
                )
            ]

    def _run(self, s: Session, run: Run, apply: bool) -> list[Mismatch]:
        out: list[Mismatch] = []
        files = s.scalars(select(RunFile).where(RunFile.run_id == run.id).order_by(RunFile.name)).all()
        avail: dict[int, dict[str, FileAvailability]] = defaultdict(dict)
        if files:
            for a in s.scalars(select(FileAvailability).where(FileAvailability.file_id.in_([f.id for f in files]))):
                avail[a.file_id][a.rse] = a
        rucio = self.rucio_files([(f.scope, f.name) for f in files])
        known_dids = self.existing_dids([(f.scope, f.name) for f in files if (f.scope, f.name) not in rucio])
        on_tier = {"s3": 0, "tape": 0}
        for f in files:
            r = rucio.get((f.scope, f.name))
            if r is None and (f.scope, f.name) not in known_dids:
                if f.registered_at is not None:
                    m = Mismatch(
                        "missing_in_rucio",
                        f.did,
                        "the catalogue says registered, Rucio has no such DID",
                        "re-run the upload of this file; --apply clears registered_at and availability",
                    )
                    if apply:
                        f.registered_at = None
                        s.execute(delete(FileAvailability).where(FileAvailability.file_id == f.id))
                        avail.pop(f.id, None)
                        m.applied = True
                    out.append(m)
                continue
            r = r or RucioFile(None, None, set())
            if (r.size is not None and r.size != f.size) or (r.adler32 and f.adler32 and r.adler32 != f.adler32):
                out.append(
                    Mismatch(
                        "content_mismatch",
                        f.did,
                        f"catalogue size {f.size} adler32 {f.adler32}, Rucio size {r.size} adler32 {r.adler32}",
                        "compare with the DAQ's copy and re-upload under a new name; never applied automatically",
                    )
                )
            if f.registered_at is None:
                m = Mismatch(
                    "not_registered",
                    f.did,
                    "Rucio has the DID, the catalogue has no registered_at",
                    "--apply sets registered_at to now",
                )
                if apply:
                    f.registered_at = utcnow()
                    m.applied = True
                out.append(m)
            known = avail.get(f.id, {})
            for rse, row in sorted(known.items()):
                if rse not in r.available_on:
                    m = Mismatch(
                        "stale_availability",
                        f.did,
                        f"the catalogue says it is on {rse}, Rucio does not",
                        "--apply forgets that availability",
                    )
                    if apply:
                        s.delete(row)
                        m.applied = True
                    out.append(m)
            for rse in sorted(r.available_on - set(known)):
                m = Mismatch(
                    "missing_availability",
                    f.did,
                    f"Rucio has it AVAILABLE on {rse}, the catalogue not",
                    "--apply records it (time: now)",
                )
                if apply:
                    s.add(FileAvailability(file_id=f.id, rse=rse, available_at=utcnow()))
                    m.applied = True
                out.append(m)
            for tier, rse in self.rse.items():
                if rse in r.available_on:
                    on_tier[tier] += 1
        s.flush()
        out.extend(self._dataset(run))
        out.extend(self._state(s, run, len(files), on_tier, apply))
        return out

    def _dataset(self, run: Run) -> list[Mismatch]:
        if not run.dataset or not run.scope:
            return []
        did = f"{run.scope}:{run.dataset}"
        if not self._did_exists(run.scope, run.dataset):
            return [
                Mismatch(
                    "dataset_missing",
                    did,
                    f"run {run.label}'s dataset is not in Rucio",
                    "the uploader creates it with the run's first file; or `rucio did add`",
                )
            ]
        out = []
        for rule in self.client.list_did_rules(run.scope, run.dataset):
            if rule["state"] in ("STUCK", "SUSPENDED"):
                out.append(
                    Mismatch(
                        "rule_not_ok",
                        did,
                        f"rule {rule['id']} to {rule['rse_expression']} is "
                        f"{rule['state']}: {rule.get('error') or ''}".strip(),
                        f"`rucio rule info {rule['id']}`; the judge-repairer retries STUCK rules",
                    )
                )
        return out

    def _state(self, s: Session, run: Run, n: int, on_tier: dict[str, int], apply: bool) -> list[Mismatch]:
        if n == 0:
            return []
        out = []
        claimed = TIER_OF_STATE.get(run.state)
        if claimed and on_tier[claimed] < n:
            out.append(
                Mismatch(
                    "state_ahead",
                    run.label,
                    f"state {run.state} but only {on_tier[claimed]}/{n} files are on {self.rse[claimed]}",
                    "find the lost replicas (`rucio replica list dataset`); never applied",
                )
            )
        target = RunState.ON_TAPE if on_tier["tape"] == n else RunState.ON_S3 if on_tier["s3"] == n else None
        if target is None:
            return out
        path = _forward_path(run.state, target)
        if path:
            m = Mismatch(
                "state_behind",
                run.label,
                f"state {run.state}, but all {n} files are on "
                f"{self.rse['tape' if target is RunState.ON_TAPE else 's3']}",
                f"--apply moves it {' → '.join([run.state.value, *[p.value for p in path]])}",
            )
            if apply:
                from inlet.catalog.runs import transition

                for step in path:
                    transition(s, run, step, reason="inlet reconcile: files found in Rucio")
                m.applied = True
            out.append(m)
        return out


def _forward_path(current: RunState, target: RunState) -> list[RunState]:
    """Legal happy-path steps from ``current`` up to ``target``; empty if none (or not behind)."""
    order = [RunState.UPLOADED, RunState.ON_S3, RunState.ON_TAPE]
    if current not in (RunState.UPLOADED, RunState.ON_S3, RunState.S3_FAILED, RunState.TAPE_FAILED):
        return []
    path: list[RunState] = []
    state: RunState = current
    for step in order:
        if order.index(step) > order.index(target):
            break
        if step in TRANSITIONS[state]:
            path.append(step)
            state = step
    return path if state == target else []
