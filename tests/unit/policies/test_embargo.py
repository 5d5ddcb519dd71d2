"""Embargo dates and the release logic (the Rucio client is stubbed at its seam here; the real
server is exercised in tests/integration/test_policies_embargo.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rucio_inlet.embargo import embargo_passed, parse_embargo

from inlet.policies.embargo_release import release

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-06-01", dt.datetime(2027, 6, 1, tzinfo=dt.UTC)),
        ("2027-06-01T12:00:00Z", dt.datetime(2027, 6, 1, 12, tzinfo=dt.UTC)),
        ("2027-06-01T14:00:00+02:00", dt.datetime(2027, 6, 1, 12, tzinfo=dt.UTC)),
        ("2027-06-01T12:00:00", dt.datetime(2027, 6, 1, 12, tzinfo=dt.UTC)),
    ],
)
def test_parse(value: str, expected: dt.datetime) -> None:
    assert parse_embargo(value) == expected


@pytest.mark.parametrize("value", ["soon", "2027-13-01", "", "01/06/2027"])
def test_unreadable_dates_name_the_form_and_never_pass(value: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_embargo(value)
    assert not embargo_passed(value, NOW)


class FakeClient:
    """The four Rucio client calls release() makes, over an in-memory catalogue."""

    def __init__(self, meta: dict[str, str]) -> None:
        self.meta = meta
        self.rules: dict[str, list[dict[str, Any]]] = {}

    def list_dids(self, scope: str, filters: dict[str, str], did_type: str) -> list[str]:
        return list(self.meta)

    def get_metadata(self, scope: str, name: str, plugin: str) -> dict[str, str]:
        return {"embargo_until": self.meta[name]}

    def list_did_rules(self, scope: str, name: str) -> list[dict[str, Any]]:
        return self.rules.get(name, [])

    def add_replication_rule(self, dids: list[dict[str, str]], copies: int, expr: str, comment: str) -> list[str]:
        rule = {"id": f"rule-{dids[0]['name']}", "rse_expression": expr}
        self.rules.setdefault(dids[0]["name"], []).append(rule)
        return [rule["id"]]


def test_release_adds_only_due_rules_and_is_idempotent() -> None:
    client = FakeClient({"past.raw": "2026-01-01", "future.raw": "2030-01-01", "typo.raw": "soon"})
    first = release(client, ["cygno.raw"], "public=True", now=NOW)
    assert [(r.name, r.action) for r in first] == [("past.raw", "added")]
    second = release(client, ["cygno.raw"], "public=True", now=NOW)
    assert [(r.name, r.action, r.rule_id) for r in second] == [("past.raw", "already public", "rule-past.raw")]
    assert len(client.rules["past.raw"]) == 1


def test_dry_run_adds_nothing() -> None:
    client = FakeClient({"past.raw": "2026-01-01"})
    assert [r.action for r in release(client, ["cygno.raw"], "public=True", now=NOW, dry_run=True)] == ["due"]
    assert client.rules == {}
