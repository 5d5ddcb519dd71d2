"""Fetch planning against a stub of Rucio's client (the seam: rule creation and listing)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from rucio.common.exception import DuplicateRule
from rucio_inlet.checksums import file_adler32

from inlet.errors import InletError
from inlet.select.fetch import Fetcher, FetchReport, check_destination, verified
from inlet.select.resolve import SelectedFile


class StubClient:
    account = "root"

    def __init__(self, existing: dict[str, str]) -> None:
        self.existing = dict(existing)  # DID name -> rule id
        self.calls: list[list[str]] = []

    def add_replication_rule(
        self, dids: list[dict[str, str]], copies: int, rse_expression: str, **kw: Any
    ) -> list[str]:
        names = [d["name"] for d in dids]
        self.calls.append(names)
        if any(n in self.existing for n in names):
            raise DuplicateRule("A duplicate rule for this account, did, rse_expression, copies already exists")
        ids = [f"rule-{n}" for n in names]
        self.existing.update(zip(names, ids, strict=True))
        return ids

    def list_did_rules(self, scope: str, name: str) -> list[dict[str, str]]:
        rid = self.existing.get(name)
        return [{"id": rid, "account": "root", "rse_expression": "rse_type=DISK"}] if rid else []


def _file(run: int, i: int) -> SelectedFile:
    return SelectedFile("test", f"run{run}.f{i}", 1, None, None, "kloe", run, "ON_TAPE", f"run{run}")


def _fetcher(client: StubClient, dest: Path) -> Fetcher:
    f = Fetcher.__new__(Fetcher)
    f.client, f.dest, f.recall_to, f.lifetime = client, dest, "rse_type=DISK", 3600
    f._local = threading.local()
    return f


def test_one_rule_request_per_run_dataset(tmp_path: Path) -> None:
    client = StubClient({})
    report = FetchReport()
    files = [_file(1, 0), _file(1, 1), _file(2, 0)]
    ids = _fetcher(client, tmp_path).recall(files, report)
    assert client.calls == [["run1.f0", "run1.f1"], ["run2.f0"]]
    assert report.recall_groups == 2 and sorted(ids) == ["rule-run1.f0", "rule-run1.f1", "rule-run2.f0"]


def test_existing_recall_rules_are_reused_and_the_rest_created(tmp_path: Path) -> None:
    client = StubClient({"run1.f0": "old-rule"})
    report = FetchReport()
    ids = _fetcher(client, tmp_path).recall([_file(1, 0), _file(1, 1)], report)
    assert ids == ["old-rule", "rule-run1.f1"]
    assert client.calls == [["run1.f0", "run1.f1"], ["run1.f0"], ["run1.f1"]]


def test_verified_needs_size_and_adler32(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"hello")
    good = SelectedFile("s", "x", 5, file_adler32(p), None, "e", 1, "ON_TAPE", None)
    assert file_adler32(p) == "062c0215"
    assert verified(p, good)
    assert not verified(p, SelectedFile("s", "x", 5, "00000001", None, "e", 1, "ON_TAPE", None))
    assert not verified(p, SelectedFile("s", "x", 6, None, None, "e", 1, "ON_TAPE", None))
    assert not verified(tmp_path / "missing", good)


def test_destination_is_checked_before_anything_is_fetched(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    refused = {
        "": "--to is empty",
        "   ": "--to is empty",
        "/dev/null": "is not a directory",
        str(tmp_path / "a-file"): "is not a directory",
        str(tmp_path / "a-file" / "below"): "a-file is not a directory",
    }
    for text, says in refused.items():
        with pytest.raises(InletError) as err:
            check_destination(text)
        assert says in err.value.problem and err.value.fix, text
    assert check_destination(str(tmp_path / "new" / "dir")) == tmp_path / "new" / "dir"  # created later
    assert check_destination(str(tmp_path)) == tmp_path
