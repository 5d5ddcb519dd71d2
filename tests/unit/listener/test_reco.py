from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from rucio_inlet.catalog_models import OutboxMessage
from sqlalchemy import select
from sqlalchemy.orm import Session

from inlet.catalog import Catalog, RunState
from inlet.catalog import runs as catalog_runs
from inlet.config import ListenerSettings, RecoSettings
from inlet.listener import reco_example
from inlet.listener.events import parse_message
from inlet.listener.handlers.base import HandlerContext
from inlet.listener.reco import CondorBackend, RecoError, RecoHandler
from inlet.listener.reco_task import expand
from tests.unit.listener.conftest import FakeRucio


def test_the_example_reconstruction_writes_per_chunk_statistics(tmp_path: Path) -> None:
    raw = tmp_path / "run1_000.dat"
    raw.write_bytes(bytes(range(256)) * 300)  # 76800 bytes: one full 64 KiB chunk and a rest
    assert reco_example.main([str(tmp_path / "out"), str(raw)]) == 0
    stats = json.loads((tmp_path / "out" / "run1_000.dat.stats.json").read_text())
    assert [c["bytes"] for c in stats["chunks"]] == [65536, 76800 - 65536]
    assert stats["chunks"][0]["mean"] == 127.5 and stats["chunks"][0]["min"] == 0 and stats["chunks"][0]["max"] == 255


def test_the_example_reconstruction_refuses_a_missing_input(tmp_path: Path) -> None:
    assert reco_example.main([str(tmp_path), str(tmp_path / "nope.dat")]) == 1


def test_the_command_template_expands_inputs_and_output(tmp_path: Path) -> None:
    argv = expand(RecoSettings().command, [Path("/a"), Path("/b")], tmp_path, 7)
    assert argv == [sys.executable, "-m", "inlet.listener.reco_example", str(tmp_path), "/a", "/b"]


def test_without_condor_the_htcondor_backend_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RecoError, match=r"'condor_submit' is not on PATH.*backend = \"celery\""):
        CondorBackend().submit({"experiment": "cygno"}, "reco:cygno:run1_raw")


def run_on(catalog: Catalog, state: RunState) -> None:
    def work(s: Session) -> None:
        run = catalog_runs.upsert_run(s, "cygno", 1, scope="cygno", dataset="run1_raw")
        catalog_runs.add_file(s, run, "cygno", "run1_000.dat", 10)
        for step in (RunState.CLOSED, RunState.UPLOADED, RunState.ON_S3, RunState.ON_TAPE):
            catalog_runs.transition(s, run, step)
            if step == state:
                break

    catalog.transaction(work)


@pytest.mark.parametrize(
    ("state", "rse", "queued"), [(RunState.ON_TAPE, "S3", 1), (RunState.ON_S3, "S3", 0), (RunState.ON_TAPE, "TAPE", 0)]
)
def test_reco_starts_for_a_run_on_tape_whose_dataset_is_on_a_processing_rse(
    catalog: Catalog, state: RunState, rse: str, queued: int
) -> None:
    run_on(catalog, state)
    body = {
        "event_type": "datasetlock_ok",
        "payload": {"scope": "cygno", "name": "run1_raw", "rse": rse, "rule_id": "r"},
        "created_at": "2026-11-21T00:00:00",
    }
    ev = parse_message(json.dumps(body).encode(), {}, 10_000)
    handler = RecoHandler(ListenerSettings(), {})
    catalog.transaction(
        lambda s: handler.handle(ev, HandlerContext(s, ListenerSettings(), FakeRucio(), logging.getLogger("t")))
    )
    with catalog.session() as s:
        msgs = s.scalars(select(OutboxMessage)).all()
    assert len(msgs) == queued
    if queued:
        assert msgs[0].kind == "reco" and msgs[0].idempotency_key == "reco:cygno:run1_raw"
        assert msgs[0].payload == {
            "experiment": "cygno",
            "run_number": 1,
            "scope": "cygno",
            "dataset": "run1_raw",
            "rse": "S3",
        }


@pytest.mark.parametrize(("state", "rses", "queued"), [(RunState.ON_TAPE, ["S3"], 1), (RunState.ON_S3, ["S3"], 0)])
def test_the_rule_ok_of_a_rule_on_a_processing_rse_starts_reco_of_a_run_on_tape(
    catalog: Catalog, state: RunState, rses: list[str], queued: int
) -> None:
    # The run may reach ON_TAPE only after its dataset lock's event (replicas not yet AVAILABLE
    # then): the rule's rule_ok, sent once the rule is OK, still starts its reconstruction.
    run_on(catalog, state)
    rucio = FakeRucio()
    rucio.rules["r1"] = rses
    body = {
        "event_type": "rule_ok",
        "payload": {"scope": "cygno", "name": "run1_raw", "rule_id": "r1"},
        "created_at": "2026-11-21T00:00:00",
    }
    ev = parse_message(json.dumps(body).encode(), {}, 10_000)
    handler = RecoHandler(ListenerSettings(), {})
    for _ in range(2):  # a repeated rule_ok queues nothing more
        catalog.transaction(
            lambda s: handler.handle(ev, HandlerContext(s, ListenerSettings(), rucio, logging.getLogger("t")))
        )
    with catalog.session() as s:
        msgs = s.scalars(select(OutboxMessage)).all()
    assert len(msgs) == queued
    if queued:
        assert msgs[0].idempotency_key == "reco:cygno:run1_raw" and msgs[0].payload["rse"] == "S3"
