from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inlet.catalog import Catalog, open_catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield cat
    cat.dispose()


class FakeRucio:
    """Answers the handlers' Rucio questions from dicts (the RucioLookup seam)."""

    def __init__(self) -> None:
        self.rules: dict[str, list[str]] = {}
        self.file_rules: dict[tuple[str, str], dict[str, str]] = {}
        self.contents: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.problems: list[dict[str, str]] = []
        #: (rse, scope, name) Rucio does NOT list as AVAILABLE (everything else is).
        self.not_available: set[tuple[str, str, str]] = set()

    def rule_rses(self, rule_id: str) -> list[str]:
        return self.rules[rule_id]

    def file_rule_states(self, scope: str, name: str) -> dict[str, str]:
        return self.file_rules.get((scope, name), {})

    def dataset_files(self, scope: str, name: str) -> list[tuple[str, str]]:
        return self.contents.get((scope, name), [(scope, name)])

    def available_on(self, rse: str, files: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(sc, n) for sc, n in files if (rse, sc, n) not in self.not_available}

    def problem_rules(self, not_ok_after: float) -> list[dict[str, str]]:
        return self.problems


@pytest.fixture
def rucio() -> FakeRucio:
    return FakeRucio()
