"""The reconstruction job: fetch a run's raw files, run the configured command, register its output.

Runs in a Celery worker (``celery -A inlet.listener.reco_task worker``) or as an HTCondor job
(``python -m inlet.listener.reco_task JOB_JSON KEY``). It is safe to run twice with the same
key: the catalogue ledger records the finished job under the key, outputs already in Rucio
are not uploaded again (:mod:`inlet.listener.reco_outputs`), and an existing rule is kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from rucio_inlet.catalog_states import RunState

from inlet.catalog import ledger, open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.config import Settings, load_settings, secret_values
from inlet.listener.reco import TASK_NAME, RecoError
from inlet.listener.reco_outputs import register_outputs
from inlet.logs import install_secret_filter

log = logging.getLogger(__name__)
LEDGER_CONSUMER = "reco-task"


def expand(command: list[str], inputs: list[Path], output_dir: Path, run: int) -> list[str]:
    argv: list[str] = []
    for part in command:
        if part == "{inputs}":
            argv.extend(str(p) for p in inputs)
        else:
            argv.append(part.format(python=sys.executable, output_dir=output_dir, run=run))
    return argv


def reconstruct(settings: Settings, job: dict[str, Any], key: str) -> dict[str, Any]:
    from rucio.client import Client
    from rucio.client.downloadclient import DownloadClient
    from rucio.common.exception import DuplicateRule

    reco = settings.listener.reco
    catalog = open_catalog(settings.catalog_url(), migrate=False)
    try:
        with catalog.session() as s:
            run = catalog_runs.get_run(s, job["experiment"], int(job["run_number"]))
            if run.state == RunState.RECONSTRUCTED:
                return {"key": key, "skipped": "already RECONSTRUCTED"}
        work = reco.work_dir / key.replace(":", "_").replace("/", "_")
        inputs_dir, output_dir = work / "in", work / "out"
        shutil.rmtree(output_dir, ignore_errors=True)
        output_dir.mkdir(parents=True)
        client = Client()
        DownloadClient(client=client).download_dids(
            [{"did": f"{job['scope']}:{job['dataset']}", "base_dir": str(inputs_dir), "rse": job["rse"]}]
        )
        inputs = sorted(p for p in inputs_dir.rglob("*") if p.is_file())
        if not inputs:
            raise RecoError(f"no file of {job['scope']}:{job['dataset']} could be fetched from {job['rse']}")
        argv = expand(reco.command, inputs, output_dir, int(job["run_number"]))
        res = subprocess.run(argv, capture_output=True, text=True, timeout=reco.timeout, check=False)
        if res.returncode != 0:
            _fail(catalog, job, f"reconstruction command exited {res.returncode}: {res.stderr.strip()[-500:]}")
            raise RecoError(f"{argv[0]} exited {res.returncode}: {res.stderr.strip()[-500:]}")
        outputs = sorted(p for p in output_dir.iterdir() if p.is_file())
        if not outputs:
            _fail(catalog, job, "the reconstruction command wrote no output")
            raise RecoError(f"{' '.join(argv[:3])}... wrote nothing into {output_dir}")
        scope = reco.scope or f"{job['experiment']}.reco"
        dataset = f"{job['dataset']}_reco"
        register_outputs(client, reco.rse, scope, dataset, outputs)
        with contextlib.suppress(DuplicateRule):
            client.add_replication_rule([{"scope": scope, "name": dataset}], 1, reco.rse)

        def done(session: Any) -> None:
            if ledger.claim_event(session, LEDGER_CONSUMER, key, "reco"):
                run = catalog_runs.get_run(session, job["experiment"], int(job["run_number"]), lock=True)
                catalog_runs.transition(
                    session, run, RunState.RECONSTRUCTED, reason=f"{len(outputs)} output(s) in {scope}:{dataset}"
                )

        catalog.transaction(done)
        return {"key": key, "outputs": [o.name for o in outputs], "dataset": f"{scope}:{dataset}"}
    finally:
        catalog.dispose()


def _fail(catalog: Any, job: dict[str, Any], reason: str) -> None:
    def work(session: Any) -> None:
        run = catalog_runs.get_run(session, job["experiment"], int(job["run_number"]), lock=True)
        if run.state == RunState.ON_TAPE:
            catalog_runs.transition(session, run, RunState.RECO_FAILED, reason=reason[:2000])

    catalog.transaction(work)


def make_app(broker_url: str) -> Celery:
    app = Celery("inlet-reco", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Anything pushed into the queue that is not a task is dropped with an alarm, not fatal.
        broker_transport="inlet.celery_transport:Transport",
    )

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def reconstruct_task(job: dict[str, Any], key: str) -> dict[str, Any]:
        return reconstruct(load_settings(), job, key)

    return app


_settings = load_settings()
# Celery's handlers bypass inlet's logging set-up: mask at the record factory (Redis URL, Rucio).
install_secret_filter(secret_values(_settings))
#: The worker's app: ``celery -A inlet.listener.reco_task worker``.
app = make_app(_settings.redis.url)


def main(argv: list[str]) -> int:
    """HTCondor entry point: ``python -m inlet.listener.reco_task JOB_JSON KEY``."""
    if len(argv) != 2:
        print("usage: python -m inlet.listener.reco_task JOB_JSON KEY", file=sys.stderr)
        return 2
    print(json.dumps(reconstruct(load_settings(), json.loads(argv[0]), argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
