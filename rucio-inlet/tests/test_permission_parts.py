"""Pieces of the Rucio-side permission check that need no database: PFN confinement, the
embargo messages, and failing closed when the run catalogue cannot be asked. Rucio's own lookups
are replaced at their seams (rucio.core.rse.get_rse_protocols, the metadata plugin list); the
whole check runs against the real server in tests/integration/test_hostile_embargo.py."""

from __future__ import annotations

import datetime as dt
from types import ModuleType
from typing import Any

import pytest

PROTOCOLS = {
    "protocols": [
        {"scheme": "file", "hostname": "localhost", "port": 0, "prefix": "/data/rses/X/"},
        {
            "scheme": "https",
            "hostname": "s3.example",
            "port": 443,
            "prefix": "bucket/",
            "extended_attributes": {"web_service_path": "/s3"},
        },
    ]
}


@pytest.fixture
def outside(permission: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Any:
    import rucio.core.rse

    monkeypatch.setattr(rucio.core.rse, "get_rse_protocols", lambda rse_id, session: PROTOCOLS)
    return lambda *pfns: permission._pfn_outside("rse-id", list(pfns), None)


@pytest.mark.parametrize(
    "pfn",
    [
        "file://localhost/data/rses/X/cygno.raw/0912/912345/run912345.mid.gz",
        "file://localhost/data/rses/X/test/19/49/plain.dat",
        "https://s3.example:443/s3/bucket/cygno.raw/a.gz",
        "https://s3.example/s3/bucket/a.gz",
    ],
)
def test_pfns_under_the_prefix_pass(outside: Any, pfn: str) -> None:
    assert outside(pfn) is None


@pytest.mark.parametrize(
    ("pfn", "why"),
    [
        ("file://localhost/etc/passwd", "lies outside the RSE's storage"),
        ("file://localhost/data/rses/XY/a", "lies outside the RSE's storage"),  # a sibling sharing the prefix text
        ("file://otherhost/data/rses/X/a", "lies outside the RSE's storage"),
        ("s3://s3.example/bucket/a", "lies outside the RSE's storage"),
        ("https://s3.example/bucket/a", "lies outside the RSE's storage"),  # without the web service path
        ("file://localhost/data/rses/X/../Y/a", "'.' or '..' segment"),
        ("file://localhost/data/rses/X/a/../../../../etc/passwd", "'.' or '..' segment"),
        ("file://localhost/data/rses/X/./a", "'.' or '..' segment"),
        ("file://localhost/data/rses/X/a\nb", "control character"),
    ],
)
def test_pfns_outside_or_with_dot_segments_are_refused(outside: Any, pfn: str, why: str) -> None:
    assert why in (outside("file://localhost/data/rses/X/ok", pfn) or "")


def test_embargo_messages_name_the_holder_and_the_source(permission: ModuleType, closure: ModuleType) -> None:
    until = dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)
    own = closure.Embargo("s:ds", "2099-01-01", until)
    assert (
        permission._embargo_text("s:f", own)
        == "DID s:f is under embargo until 2099-01-01T00:00:00+00:00 (through s:ds)"
    )
    cat = closure.Embargo("s:f", "2099-01-01T00:00:00", until, "the run catalogue")
    assert permission._embargo_text("s:f", cat).endswith("until 2099-01-01T00:00:00+00:00 in the run catalogue")
    typo = closure.Embargo("s:f", "soon", None)
    assert "unreadable embargo_until='soon', which counts as embargoed" in permission._embargo_text("s:f", typo)


def test_unreachable_run_catalogue_counts_as_embargo(closure: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    import rucio.core.did_meta_plugins as plugins

    class Down:
        def embargo_values(self, dids: list[tuple[str, str]], *, session: Any = None) -> dict[Any, str]:
            raise OSError("catalogue down")

    monkeypatch.setattr(plugins, "METADATA_PLUGIN_MODULES", [Down()])
    from rucio.common.types import InternalScope

    found = list(closure._catalogued([(InternalScope("test", vo="def"), "f")], None))
    assert len(found) == 1 and found[0].until is None and found[0].active(dt.datetime.now(dt.timezone.utc))
    assert "run catalogue unreadable: catalogue down" in str(found[0].raw)


def test_approving_a_rule_rechecks_what_it_would_copy(permission: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the lake, a rule cannot wait for approval until its mail templates are configured (issue 13,
    item 7), so the wiring is checked here: approval re-runs the embargo check on the rule's DID."""
    rule = {"scope": "scope-object", "name": "ds", "rse_expression": "PUBLIC"}
    seen: list[Any] = []
    monkeypatch.setattr(permission.generic, "has_permission", lambda *a, **k: True)
    monkeypatch.setattr(permission, "_rule", lambda kwargs, session: rule)
    monkeypatch.setattr(
        permission, "_rule_embargo", lambda issuer, dids, expr, session: seen.append((dids, expr)) or "verdict"
    )
    assert permission.perm_approve_rule("issuer", {"rule_id": "r1"}, None) == "verdict"
    assert seen == [([("scope-object", "ds")], "PUBLIC")]
