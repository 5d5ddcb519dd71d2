"""Reconstruction trigger: handler, job description and the backends that run the job.

The handler only *decides*: a ``datasetlock_ok`` on a processing RSE (or the ``rule_ok`` of a
rule there) for a run's raw dataset that is ON_TAPE queues a ``reco`` outbox message (key
``reco:<scope>:<dataset>``) in the event's transaction. After commit the outbox hands it to
a backend behind one interface:

- :class:`CeleryBackend` sends the Celery task ``inlet.reco.reconstruct`` with the key as
  its task id (``inlet.listener.reco_task`` does the work);
- :class:`CondorBackend` submits the same job with ``condor_submit`` for sites that run
  HTCondor (CYGNO's cloud queue).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

from rucio_inlet.catalog_models import OutboxMessage, Run
from rucio_inlet.catalog_states import RunState
from sqlalchemy import select

from inlet.config import ListenerSettings, RecoSettings
from inlet.listener.events import Event
from inlet.listener.handlers.base import HandlerContext

RECO_KIND = "reco"
TASK_NAME = "inlet.reco.reconstruct"


class RecoError(Exception):
    """The reconstruction cannot be submitted or run; the message names the fix."""


class RecoHandler:
    name = "reco"

    def __init__(self, settings: ListenerSettings, options: dict[str, Any]) -> None:
        self.reco = settings.reco

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        if event.event_type == "datasetlock_ok":
            scope, name, rse = event.require("scope", "name", "rse")
            if rse in self.reco.processing_rses:
                self._start(scope, name, rse, ctx)
        elif event.event_type == "rule_ok":
            # A dataset lock's event can come while its replicas are not yet AVAILABLE (the
            # finisher marks them after the transfer's events), and the run then reaches ON_TAPE
            # on a later event: the rule's rule_ok, sent once the rule is OK, starts it then.
            scope, name, rule_id = event.require("scope", "name", "rule_id")
            if not self._run_on_tape(scope, name, ctx):
                return
            for rse in ctx.rucio.rule_rses(str(rule_id)):
                if rse in self.reco.processing_rses:
                    self._start(scope, name, rse, ctx)
                    return

    @staticmethod
    def _run_on_tape(scope: str, name: str, ctx: HandlerContext) -> bool:
        run = ctx.session.scalars(select(Run).where(Run.scope == scope, Run.dataset == name)).one_or_none()
        return run is not None and run.state == RunState.ON_TAPE

    def _start(self, scope: str, name: str, rse: str, ctx: HandlerContext) -> None:
        run = ctx.session.scalars(select(Run).where(Run.scope == scope, Run.dataset == name)).one_or_none()
        if run is None:
            return
        if run.state != RunState.ON_TAPE:
            # The life cycle reconstructs runs that are safe on tape; an earlier lock is logged.
            ctx.log.info("run %s is %s, not ON_TAPE: reconstruction not started yet", run.label, run.state)
            return
        # The lock event could be forged: start the job only if Rucio has the data there.
        files = ctx.rucio.dataset_files(scope, name)
        missing = set(files) - ctx.rucio.available_on(rse, files)
        if not files or missing:
            ctx.log.warning(
                "run %s: datasetlock_ok says %s:%s is on %s, but Rucio lists %d of its %d files as not AVAILABLE "
                "there: reconstruction not started",
                run.label,
                scope,
                name,
                rse,
                len(missing),
                len(files),
            )
            return
        job = {
            "experiment": run.experiment,
            "run_number": run.run_number,
            "scope": scope,
            "dataset": name,
            "rse": rse,
        }
        ctx.enqueue(RECO_KIND, job, f"reco:{scope}:{name}")


class RecoBackend(Protocol):
    def submit(self, job: dict[str, Any], key: str) -> str:
        """Start the job; returns the backend's id for it. Must tolerate a repeated key."""
        ...


class CeleryBackend:
    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url

    def submit(self, job: dict[str, Any], key: str) -> str:
        from inlet.listener.reco_task import make_app

        # The idempotency key is the task id: a re-sent message names the same task, and the
        # task itself records its work in the ledger under that id.
        result = make_app(self.broker_url).send_task(TASK_NAME, kwargs={"job": job, "key": key}, task_id=key)
        return str(result.id)


class CondorBackend:
    """Submit ``python -m inlet.listener.reco_task JOB_JSON KEY`` as an HTCondor vanilla job."""

    def __init__(self, condor_submit: str = "condor_submit") -> None:
        self.condor_submit = condor_submit

    def submit(self, job: dict[str, Any], key: str) -> str:
        exe = shutil.which(self.condor_submit)
        if exe is None:
            raise RecoError(
                f"HTCondor backend: {self.condor_submit!r} is not on PATH, so no job can be submitted; "
                'install the HTCondor client tools on this host, or set [listener.reco] backend = "celery"'
            )
        import json

        with tempfile.TemporaryDirectory() as tmp:
            sub = Path(tmp) / "reco.sub"
            sub.write_text(
                f"universe = vanilla\nexecutable = {sys.executable}\n"
                f"arguments = \"-m inlet.listener.reco_task '{json.dumps(job)}' {key}\"\n"
                "getenv = True\n"
                f'+InletKey = "{key}"\n'
                "queue 1\n"
            )
            res = subprocess.run([exe, "-terse", str(sub)], capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise RecoError(f"condor_submit failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        return res.stdout.strip()


def backend_for(reco: RecoSettings, broker_url: str) -> RecoBackend:
    return CeleryBackend(broker_url) if reco.backend == "celery" else CondorBackend()


class RecoSender:
    """Outbox sender of ``reco`` messages."""

    def __init__(self, backend: RecoBackend) -> None:
        self.backend = backend

    def __call__(self, msg: OutboxMessage) -> None:
        self.backend.submit(dict(msg.payload), msg.idempotency_key)
