"""Bulk registration at the Rucio client seam: one call per batch, and a retried batch sorted out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rucio.common import exception as rucio_exc

from inlet.config import RulePolicy, Settings
from inlet.uploader.digest import Digest, FileState
from inlet.uploader.pipeline import BatchResult, Uploader
from inlet.uploader.plan import plan_file, run_collections
from inlet.uploader.storage import Placed


class FakeClient:
    def __init__(self, known: dict[str, dict[str, Any]]) -> None:
        self.known = known
        self.calls: list[tuple[str, Any]] = []

    def attach_dids(self, scope: str, name: str, dids: list[dict[str, Any]], rse: str | None = None) -> None:
        # Rucio registers the replicas and attaches them in one transaction: all or nothing.
        self.calls.append(("attach_with_replicas", [d["name"] for d in dids]))
        assert rse == "SITE_A_DISK"
        if any(d["name"] in self.known for d in dids):
            raise rucio_exc.FileReplicaAlreadyExists("exists")

    def add_replicas(self, rse: str, files: list[dict[str, Any]]) -> None:
        self.calls.append(("add_replicas", [f["name"] for f in files]))
        if any(f["name"] in self.known for f in files):
            raise rucio_exc.FileReplicaAlreadyExists("exists")

    def get_metadata_bulk(self, dids: list[dict[str, str]]) -> list[dict[str, Any]]:
        self.calls.append(("get_metadata_bulk", len(dids)))
        return [
            {"scope": d["scope"], "name": d["name"], **self.known[d["name"]]} for d in dids if d["name"] in self.known
        ]

    def attach_dids_to_dids(self, attachments: list[dict[str, Any]], ignore_duplicate: bool = False) -> None:
        self.calls.append(("attach", [d["name"] for d in attachments[0]["dids"]]))


def _placed(names: list[str]) -> list[tuple[Any, Placed]]:
    s = Settings()
    coll = run_collections(s, 1, "raw")
    return [
        (
            plan_file(Path(f"/daq/{n}"), coll, s.naming),
            Placed("file:///x", Digest(10, "0000000a", "0" * 32), FileState(10, 1, 1)),
        )
        for n in names
    ]


def _uploader(client: FakeClient) -> Uploader:
    up = Uploader(Settings())
    up._client = client
    return up


def test_a_new_batch_costs_one_attach_with_replicas() -> None:
    client = FakeClient({})
    names = [f"run000001_pmt_{i:04d}.mid.gz" for i in range(1, 4)]
    placed = _placed(names)
    ok = _uploader(client)._register(placed[0][0].collections, placed, BatchResult())
    assert len(ok) == 3
    assert client.calls == [("attach_with_replicas", names)]


def test_a_retried_batch_accepts_identical_refuses_different_and_adds_the_rest() -> None:
    same, other, new = (f"run000001_pmt_{i:04d}.mid.gz" for i in range(1, 4))
    client = FakeClient({same: {"bytes": 10, "adler32": "0000000a"}, other: {"bytes": 10, "adler32": "ffffffff"}})
    placed = _placed([same, other, new])
    res = BatchResult()
    ok = _uploader(client)._register(placed[0][0].collections, placed, res)
    assert [p.name for p, _ in ok] == [same, new]
    assert "never overwritten" in res.failed[f"/daq/{other}"]
    assert client.calls == [
        ("attach_with_replicas", [same, other, new]),
        ("get_metadata_bulk", 3),
        ("add_replicas", [new]),
        ("attach", [same, new]),
    ]


class RseLister:
    def __init__(self, rses: dict[str, list[str]], fail: bool = False) -> None:
        self.rses = rses
        self.fail = fail

    def list_rses(self, expression: str) -> list[dict[str, str]]:
        if self.fail:
            raise ConnectionError("server away")
        return [{"rse": r} for r in self.rses[expression]]


def test_dataset_rules_drop_dataset_grouping_only_where_nothing_depends_on_it() -> None:
    """DATASET grouping makes Rucio read the whole dataset on each attach; kept where it matters."""
    up = Uploader(Settings())
    up._client = RseLister({"SITE_A_DISK": ["SITE_A_DISK"], "tier=1": ["T1_A", "T1_B"]})
    # One RSE, one copy, nothing awaits a datasetlock_ok: the same placement, without the scan.
    assert up._grouping(RulePolicy(rse_expression="SITE_A_DISK", notify="N")) == "NONE"
    # A choice of RSEs: DATASET keeps the run's files together.
    assert up._grouping(RulePolicy(rse_expression="tier=1", notify="N")) == "DATASET"
    assert up._grouping(RulePolicy(rse_expression="tier=1", copies=2, notify="N")) == "NONE"
    # rule_ok / datasetlock_ok may be awaited (reconstruction, DAQ release): kept.
    assert up._grouping(RulePolicy(rse_expression="SITE_A_DISK", notify="C")) == "DATASET"
    # Asked for explicitly: as asked.
    assert up._grouping(RulePolicy(rse_expression="SITE_A_DISK", notify="N", grouping="DATASET")) == "DATASET"
    # The RSE list unknown: the safe default.
    up._client = RseLister({}, fail=True)
    assert up._grouping(RulePolicy(rse_expression="SITE_A_DISK", notify="N")) == "DATASET"


class RuleClient:
    """add_replication_rule as Rucio answers it: one rule per DID, the whole call refused if any
    DID has the same rule (account, RSE expression, copies) already."""

    def __init__(self, have: set[str]) -> None:
        self.have = set(have)
        self.calls: list[tuple[str, list[str]]] = []

    def add_replication_rule(self, dids: list[dict[str, str]], **args: Any) -> list[str]:
        names = [d["name"] for d in dids]
        self.calls.append(("add_rule", names))
        assert args["grouping"] == "NONE" and args["rse_expression"] == "SITE_B_DISK"
        if self.have & set(names):
            raise rucio_exc.DuplicateRule("exists")
        self.have |= set(names)
        return [f"rule-{n}" for n in names]

    def list_did_rules(self, scope: str, name: str) -> list[dict[str, Any]]:
        self.calls.append(("list_rules", [name]))
        if name not in self.have:
            return []
        return [{"account": "root", "rse_expression": "SITE_B_DISK", "copies": 1}]


def _per_file_uploader(client: RuleClient) -> tuple[Uploader, Any]:
    streams = {"raw": {"tier": "raw", "rules": [{"rse_expression": "SITE_B_DISK", "per_file": True, "notify": "Y"}]}}
    up = Uploader(Settings(uploader={"streams": streams}))  # type: ignore[arg-type]
    up._client = client
    return up, run_collections(up.settings, 1, "raw")


def test_a_batchs_per_file_rules_are_one_call_one_rule_per_file() -> None:
    client = RuleClient(set())
    up, coll = _per_file_uploader(client)
    names = [f"run000001_pmt_{i:04d}.mid.gz" for i in range(1, 6)]
    up._file_rules(coll, [f"{coll.scope}:{n}" for n in names])
    assert client.calls == [("add_rule", names)]
    assert client.have == set(names)


def test_a_retried_batch_adds_only_the_missing_per_file_rules_in_one_call() -> None:
    names = [f"run000001_pmt_{i:04d}.mid.gz" for i in range(1, 5)]
    client = RuleClient({names[0], names[2]})
    up, coll = _per_file_uploader(client)
    up._file_rules(coll, [f"{coll.scope}:{n}" for n in names])
    assert client.have == set(names)
    assert client.calls == [
        ("add_rule", names),
        *[("list_rules", [n]) for n in names],
        ("add_rule", [names[1], names[3]]),
    ]
    # All there already: nothing more than the refused call and the look.
    client.calls.clear()
    up._file_rules(coll, [f"{coll.scope}:{n}" for n in names])
    assert [c for c in client.calls if c[0] == "add_rule"] == [("add_rule", names)]
