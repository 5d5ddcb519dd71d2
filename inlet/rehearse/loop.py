"""The listener in the rehearsal's loop: ``inlet listen`` takes the run to RECONSTRUCTED, once.

With ``--chaos`` the rehearsal runs the whole life cycle, not only site B's downloads: its own
``inlet listen`` (unless the lake runs one) and a reconstruction worker, and after the run is
closed and UPLOADED, rules that copy its dataset to S3 and then to TAPE. The listener moves the
run ON_S3, ON_TAPE, and on TAPE's ``datasetlock_ok`` starts its reconstruction, whose worker
marks it RECONSTRUCTED. Meanwhile the listener's release handler sends a ``daq-release`` per
chunk. The chaos drill kills the listener like any other part.

:func:`effects` then reads, from the real sources, whether anything happened twice: the
catalogue's ``run_transitions``, the outbox rows of the reconstruction job and of the DAQ
releases, the reco worker's own log of the jobs it ran, and Rucio's rules (every one OK).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from inlet.config import Settings
from inlet.rehearse.procs import OwnProcess

#: Where the run goes after site B: S3, then TAPE (the processing RSE of its reconstruction).
S3_RSE = "S3"
TAPE_RSE = "TAPE"
#: Where the reconstruction's outputs are uploaded (a disk RSE the lake writes to with every plan).
RECO_OUTPUT_RSE = "SITE_A_DISK"
#: Scope of the reconstruction's outputs: the lake's ``test`` scope (an experiment's naming rules
#: may define no reco scope for it: virgo has only ``virgo.raw``).
RECO_SCOPE = "test"

_TASK_DONE = re.compile(r"Task inlet\.reco\.reconstruct\[[^\]]+\] succeeded in [0-9.]+s: (\{.*\})")


class ListenerLoop:
    """``inlet listen`` and a reconstruction worker run by the rehearsal, and the S3/TAPE phase."""

    def __init__(self, settings: Settings, out: Path, env: dict[str, str], lake_listener: bool) -> None:
        self.settings = settings
        self.out = out
        #: The lake runs the listener ([lake] manage has it): the drill kills that one.
        self.lake_listener = lake_listener
        bin_dir = Path(sys.executable).parent
        # This process's environment once Rucio's client is set up (RUCIO_CONFIG), as the worker's.
        loop_env = {
            **env,
            **os.environ,
            "INLET_LISTENER__S3_RSES": json.dumps([S3_RSE]),
            "INLET_LISTENER__TAPE_RSES": json.dumps([TAPE_RSE]),
            "INLET_LISTENER__RECO__PROCESSING_RSES": json.dumps([TAPE_RSE]),
            "INLET_LISTENER__RECO__RSE": RECO_OUTPUT_RSE,
            "INLET_LISTENER__RECO__SCOPE": RECO_SCOPE,
            "INLET_LISTENER__RECO__WORK_DIR": str(out / "reco"),
            "INLET_LISTENER__METRICS_PORT": "0",
        }
        self.listener = OwnProcess(
            "listener", [str(bin_dir / "inlet"), "-v", "listen"], loop_env, out / "listener.log", b"starting on"
        )
        self.reco = OwnProcess(
            "reco worker",
            [
                str(bin_dir / "celery"),
                "-A",
                "inlet.listener.reco_task",
                "worker",
                "--pool",
                "solo",
                "-n",
                f"rehearse-reco-{uuid.uuid4().hex[:6]}@%h",
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            loop_env,
            out / "reco-worker.log",
            b"ready.",
        )
        self.phase_notes: list[str] = []

    def start(self) -> None:
        if not self.lake_listener:
            self.listener.start()
        self.reco.start()

    def stop(self) -> None:
        self.listener.stop()
        self.reco.stop()

    # -- after the run is closed ------------------------------------------------------------------
    def to_reconstructed(self, scope: str, dataset: str, experiment: str, run: int, timeout: float) -> str | None:
        """Rule the run dataset to S3, then to TAPE; wait for RECONSTRUCTED. Returns the last state seen."""
        from rucio.client import Client

        client = Client()
        deadline = time.monotonic() + timeout
        state = self.run_state(experiment, run)
        for rse, target in ((S3_RSE, "ON_S3"), (TAPE_RSE, "RECONSTRUCTED")):
            self._add_rule(client, scope, dataset, rse, deadline)
            state = self._wait_state(experiment, run, target, deadline)
            if state != target:
                self.phase_notes.append(f"the run stopped at {state} waiting for {target} (rule to {rse})")
                return state
        return state

    def _add_rule(self, client: Any, scope: str, dataset: str, rse: str, deadline: float) -> None:
        from rucio.common.exception import DuplicateRule

        while True:
            try:
                client.add_replication_rule([{"scope": scope, "name": dataset}], 1, rse, grouping="DATASET", notify="Y")
                return
            except DuplicateRule:
                return
            except Exception:
                # The Rucio server may be the part the drill has down: try again until the deadline.
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def _wait_state(self, experiment: str, run: int, target: str, deadline: float) -> str | None:
        state = None
        while time.monotonic() < deadline:
            try:
                state = self.run_state(experiment, run)
            except Exception:
                state = state  # MariaDB may be down: look again
            if state == target:
                return state
            time.sleep(1.0)
        return state

    def run_state(self, experiment: str, run: int) -> str | None:
        from inlet.catalog import open_catalog
        from inlet.catalog import runs as catalog_runs

        catalog = open_catalog(self.settings.catalog_url(), migrate=False)
        try:
            with catalog.session() as s:
                return str(catalog_runs.get_run(s, experiment, run).state)
        finally:
            catalog.dispose()

    def reco_jobs_run(self) -> int:
        """Reconstruction jobs that did the work (not skipped as already done), from the worker's log."""
        try:
            text = self.reco.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(1 for m in _TASK_DONE.finditer(text) if "'skipped'" not in m[1])


def effects(settings: Settings, experiment: str, run: int, scope: str, dataset: str, reco_jobs: int) -> dict[str, Any]:
    """Everything the run caused, read back from the catalogue and Rucio, with the duplicates counted."""
    from rucio_inlet.catalog_models import OutboxMessage, ProcessedEvent, Run, RunTransition
    from sqlalchemy import func, select

    from inlet.catalog import open_catalog

    catalog = open_catalog(settings.catalog_url(), migrate=False)
    try:
        with catalog.session() as s:
            run_id = s.scalar(select(Run.id).where(Run.experiment == experiment, Run.run_number == run))
            moves = [
                (str(f), str(t))
                for f, t in s.execute(
                    select(RunTransition.from_state, RunTransition.to_state)
                    .where(RunTransition.run_id == run_id)
                    .order_by(RunTransition.id)
                )
            ]
            reco_key = f"reco:{scope}:{dataset}"
            reco_outbox = int(
                s.scalar(
                    select(func.count()).select_from(OutboxMessage).where(OutboxMessage.idempotency_key == reco_key)
                )
                or 0
            )
            reco_ledger = int(
                s.scalar(
                    select(func.count())
                    .select_from(ProcessedEvent)
                    .where(ProcessedEvent.consumer == "reco-task", ProcessedEvent.event_key == reco_key)
                )
                or 0
            )
            prefix = f"daq-release:{scope}:"
            run_tag = dataset.split(".")[0]  # run000123
            releases = [
                str(k)
                for (k,) in s.execute(
                    select(OutboxMessage.idempotency_key).where(
                        OutboxMessage.idempotency_key.like(f"{prefix}{run_tag}%")
                    )
                )
            ]
    finally:
        catalog.dispose()
    into_reco = sum(1 for _, t in moves if t == "RECONSTRUCTED")
    return {
        "transitions": [f"{f}→{t}" for f, t in moves],
        "duplicate_transitions": len(moves) - len(set(moves)),
        "reco_outbox": reco_outbox,
        "reco_ledger": reco_ledger,
        "reco_jobs_run": reco_jobs,
        "duplicate_reco_jobs": max(0, reco_jobs - 1) + max(0, into_reco - 1),
        "daq_releases": len(releases),
        "duplicate_daq_releases": len(releases) - len(set(releases)),
    }


def rules_not_ok(scope: str, run_tag: str, also: list[tuple[str, str]]) -> list[str]:
    """Rules of the run's files and datasets (and of ``also``) that are not OK, as 'did → rse: STATE'."""
    from rucio.client import Client
    from rucio.common.exception import DataIdentifierNotFound

    client = Client()
    bad = []
    for rule in client.list_replication_rules(filters={"scope": scope}):
        if str(rule["name"]).startswith(run_tag) and rule["state"] != "OK":
            bad.append(f"{rule['scope']}:{rule['name']} → {rule['rse_expression']}: {rule['state']}")
    for s, n in also:
        try:
            rules = list(client.list_did_rules(s, n))
        except DataIdentifierNotFound:
            bad.append(f"{s}:{n}: no such DID")
            continue
        bad += [f"{s}:{n} → {r['rse_expression']}: {r['state']}" for r in rules if r["state"] != "OK"]
    return bad
