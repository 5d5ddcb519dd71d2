"""Issue 13's hostile user, on the real lake: every route that put embargoed bytes on a public RSE,
plus variants, tried from a plain account (no attributes), a collaboration member, a data manager
and an 'admin' account, with the plain Rucio client and a public RSE of the test's own.

Each attempt must be refused with a message saying why (fragments asserted), or end without harm;
the last test checks that no replica, rule or byte of the embargoed data reached the public RSE.

The public RSE is named ..._SCRATCHDISK on purpose: Rucio's generic policy lets *any* account
register replicas on such an RSE, so the refusals below come from inlet's embargo checks and not
from generic's admin-only default.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from inlet.catalog import open_catalog
from inlet.catalog.runs import add_file, upsert_run
from inlet.lake.lake import Lake
from tests.integration.actors import FUTURE, PASSWORD, Actor, Outcome, expect_ok, fake_file, posix_protocol

Call = tuple[str, list[Any], dict[str, Any]]
EMBARGO_WHY = "Proprietary data may only go to private RSEs"


@dataclass
class Hostile:
    lake: Lake
    root: Actor
    plain: Actor
    collab: Actor
    dm: Actor
    admin: Actor
    public: str
    public_dir: Path
    run: int
    raw_file: str  # real bytes on SITE_A_DISK, in raw_ds (embargoed dataset)
    raw_ds: str
    own_embargo_file: str  # embargo_until on the file itself, no dataset
    catalogue_file: str  # embargoed only in the run catalogue
    raw_rule: str  # OK rule on raw_ds (locks raw_file's replica)

    def scope(self, actor: Actor) -> str:
        return f"user.{actor.account}"

    def tag(self) -> str:
        return uuid.uuid4().hex[:6]


def _rule(scope: str, name: str, rse: str, **kw: Any) -> Call:
    return ("add_replication_rule", [[{"scope": scope, "name": name}], 1, rse], kw)


@pytest.fixture(scope="module")
def hw(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    work = tmp_path_factory.mktemp("hostile")
    sfx = uuid.uuid4().hex[:6]
    r = lake.settings.rucio
    root = Actor("root", lake, work, r.username, r.password)
    roles = {"plain": [], "collab": ["collaboration"], "dm": ["data-manager"], "admin": ["admin"]}
    accounts = {role: f"h{role[:3]}{sfx}" for role in roles}
    public = f"HPUB{sfx.upper()}_SCRATCHDISK"
    public_dir = lake.paths.data / "rses" / public
    run = random.randint(100000, 899000)
    raw_file, raw_ds = f"run{run:06d}.mid.gz", f"run{run:06d}.raw"
    own_embargo_file = f"run{run + 1:06d}.mid.gz"
    catalogue_file = f"run{run + 2:06d}.mid.gz"

    calls: list[Call] = [
        ("add_rse", [public], {}),
        ("add_protocol", [public, posix_protocol(public_dir)], {}),
        ("add_rse_attribute", [public, "public", True], {}),
        ("add_rse_attribute", [public, "greedyDeletion", True], {}),
        ("add_distance", ["SITE_A_DISK", public, {"distance": 1}], {}),
        ("set_local_account_limit", [r.account, public, 10**12], {}),
    ]
    for role, account in accounts.items():
        calls += [
            ("add_account", [account, "USER", f"{account}@localhost"], {}),
            ("add_identity", [account, account, "USERPASS", f"{account}@localhost"], {"password": PASSWORD}),
            ("add_scope", [account, f"user.{account}"], {}),
        ]
        calls += [("add_account_attribute", [account, key, "True"], {}) for key in roles[role]]
        calls += [
            ("set_local_account_limit", [account, rse, 10**12], {}) for rse in ("SITE_A_DISK", "SITE_B_DISK", public)
        ]
    # Real bytes for the embargoed raw file, where Rucio's lfn2pfn puts them on SITE_A_DISK.
    pfn = expect_ok(root.run(("lfns2pfns", ["SITE_A_DISK", [f"cygno.raw:{raw_file}"]], {"operation": "write"})))
    path = Path(urlparse(pfn[0].result[f"cygno.raw:{raw_file}"]).path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random.randbytes(4096)
    path.write_bytes(data)
    real = {"scope": "cygno.raw", "name": raw_file, "bytes": len(data), "adler32": f"{zlib.adler32(data):08x}"}
    calls += [
        ("add_replicas", ["SITE_A_DISK", [real, fake_file("cygno.raw", own_embargo_file)]], {}),
        ("add_replicas", ["SITE_A_DISK", [fake_file("cygno.raw", catalogue_file)]], {}),
        ("add_dataset", ["cygno.raw", raw_ds], {}),
        ("attach_dids", ["cygno.raw", raw_ds, [{"scope": "cygno.raw", "name": raw_file}]], {}),
        ("set_metadata", ["cygno.raw", raw_ds, "embargo_until", FUTURE], {}),
        ("set_metadata", ["cygno.raw", own_embargo_file, "embargo_until", FUTURE], {}),
        _rule("cygno.raw", raw_ds, "SITE_A_DISK"),
    ]
    out = expect_ok(root.run(*calls))
    # The third run is embargoed in the run catalogue only (Rucio holds no embargo_until for it).
    catalog = open_catalog(lake.settings.catalog_url())
    try:
        with catalog.session() as s:
            embargo = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
            cat_run = upsert_run(
                s, "cygno", run + 2, embargo_until=embargo, scope="cygno.raw", dataset=f"run{run + 2:06d}.raw"
            )
            add_file(s, cat_run, "cygno.raw", catalogue_file, 1000, adler32="0a0b0c0d")
    finally:
        catalog.dispose()
    actors = {role: Actor(a, lake, work, a, PASSWORD) for role, a in accounts.items()}
    for actor in actors.values():
        actor.start()
    w = Hostile(
        lake,
        root,
        actors["plain"],
        actors["collab"],
        actors["dm"],
        actors["admin"],
        public,
        public_dir,
        run,
        raw_file,
        raw_ds,
        own_embargo_file,
        catalogue_file,
        str(out[-1].result[0]),
    )
    yield w
    for actor in (root, *actors.values()):
        actor.close()


def _embargo_denied(out: Outcome, *fragments: str) -> None:
    assert out.denied(*fragments), out


# -- route 1: delete_metadata -----------------------------------------------------------------
def test_embargo_until_cannot_be_deleted(hw: Hostile) -> None:
    w = hw
    scope, own = w.scope(w.plain), f"mine-{w.tag()}"
    out = w.plain.run(
        ("delete_metadata", ["cygno.raw", w.raw_ds, "embargo_until"], {}),
        ("add_dataset", [scope, own], {"meta": {"embargo_until": FUTURE}}),
        ("delete_metadata", [scope, own, "embargo_until"], {}),
        ("get_metadata", ["cygno.raw", w.raw_ds], {"plugin": "JSON"}),
    )
    for o in (out[0], out[2]):
        assert o.error == "AccessDenied" and "embargo_until of" in o.message, o
        assert "cannot be deleted: removing it would lift the embargo" in o.message, o
    assert out[1].ok, out[1]
    assert out[3].result["embargo_until"] == FUTURE
    # Root too: ending an embargo is setting a past date, never deleting the key.
    assert w.root.call("delete_metadata", "cygno.raw", w.raw_ds, "embargo_until").denied("cannot be deleted")


# -- route 2: a DID created with embargoed content and a public rule in one call ----------------
def test_dataset_created_with_embargoed_files_and_public_rule(hw: Hostile) -> None:
    w = hw
    scope = w.scope(w.plain)
    rule = [{"copies": 1, "rse_expression": w.public, "account": w.plain.account}]
    raw = [{"scope": "cygno.raw", "name": w.raw_file}]
    names = [f"grab-{w.tag()}" for _ in range(4)]
    out = w.plain.run(
        ("add_dataset", [scope, names[0]], {"files": raw, "rules": rule}),
        ("add_dataset", [scope, names[1]], {"files": [{"scope": "cygno.raw", "name": w.own_embargo_file}]}),
        ("add_dataset", [scope, names[2]], {"files": raw, "rse": w.public}),  # replicas registered on public
        ("add_dids", [[{"scope": scope, "name": names[3], "type": "DATASET", "rules": rule, "dids": raw}]], {}),
    )
    # A data manager passes the raw-scope rule, and meets the embargo.
    dm = w.dm.call("add_dataset", w.scope(w.dm), names[2], files=raw, rse=w.public)
    _embargo_denied(
        out[0],
        f"DID cygno.raw:{w.raw_file} is under embargo until 2099-01-01T00:00:00+00:00 (through cygno.raw:{w.raw_ds})",
        f"new DID {scope}:{names[0]}",
        f"public RSE(s) {w.public}",
        EMBARGO_WHY,
    )
    assert out[1].ok, out[1]  # private content, no rule: fine
    assert out[2].denied("Registering replicas in raw scope cygno.raw"), out[2]
    _embargo_denied(dm, f"cygno.raw:{w.raw_file} is under embargo", f"public RSE {w.public}")
    assert not out[3].ok, out[3]
    assert out[3].error in ("AccessDenied", "InvalidObject"), out[3]


# -- route 3: attach embargoed data (or data of an embargoed dataset) to one's own, then rule it --
def test_attach_then_rule_public_is_refused(hw: Hostile) -> None:
    w = hw
    scope = w.scope(w.collab)
    t = w.tag()
    a, b, c, d = (f"{x}-{t}" for x in ("steal", "ruled", "cont", "multi"))
    out = w.collab.run(
        ("add_dataset", [scope, a], {}),
        ("attach_dids", [scope, a, [{"scope": "cygno.raw", "name": w.raw_file}]], {}),  # no public rule yet: ok
        _rule(scope, a, w.public),  # 2: the file's *dataset* is embargoed
        ("add_dataset", [scope, b], {}),
        _rule(scope, b, w.public),  # 4: empty and public: fine
        ("attach_dids", [scope, b, [{"scope": "cygno.raw", "name": w.raw_file}]], {}),  # 5
        ("add_container", [scope, c], {}),
        ("attach_dids", [scope, c, [{"scope": "cygno.raw", "name": w.raw_ds}]], {}),  # embargoed dataset itself
        _rule(scope, c, f"{w.public}|SITE_B_DISK"),  # 8: any expression reaching a public RSE
        ("add_dataset", [scope, d], {}),
        ("attach_dids_to_dids", [[{"scope": scope, "name": b, "dids": [{"scope": scope, "name": a}]}]], {}),  # 10
        _rule(scope, a, "SITE_B_DISK"),  # private: fine
        _rule(scope, a, f"public=True&{w.public}"),  # 12: by attribute
        ("attach_dids", [scope, b, [{"scope": "cygno.raw", "name": w.own_embargo_file}]], {}),  # 13
    )
    expect_ok([out[i] for i in (0, 1, 3, 4, 6, 7, 9, 11)])
    _embargo_denied(
        out[2], f"DID {scope}:{a} is under embargo until 2099", f"(through cygno.raw:{w.raw_ds})", EMBARGO_WHY
    )
    _embargo_denied(
        out[5],
        f"Attaching cygno.raw:{w.raw_file} (under embargo: embargo_until={FUTURE} on cygno.raw:{w.raw_ds})",
        f"would copy it to public RSE(s) {w.public} through rule {out[4].result[0]}",
    )
    _embargo_denied(out[8], f"(through cygno.raw:{w.raw_ds})", f"public RSE(s) {w.public}")
    _embargo_denied(out[10], f"Attaching {scope}:{a}", f"through rule {out[4].result[0]}")
    _embargo_denied(out[12], "is under embargo until 2099")
    _embargo_denied(out[13], f"Attaching cygno.raw:{w.own_embargo_file} (under embargo: embargo_until={FUTURE}")


# -- route 4: a run embargoed only in the run catalogue ---------------------------------------
def test_run_catalogue_embargo_is_enforced(hw: Hostile) -> None:
    w = hw
    scope, mine = w.scope(w.plain), f"catrun-{w.tag()}"
    out = w.plain.run(
        _rule("cygno.raw", w.catalogue_file, w.public),
        ("add_dataset", [scope, mine], {}),
        ("attach_dids", [scope, mine, [{"scope": "cygno.raw", "name": w.catalogue_file}]], {}),
        _rule(scope, mine, w.public),
        ("get_metadata", ["cygno.raw", w.catalogue_file], {"plugin": "ALL"}),
    )
    _embargo_denied(
        out[0],
        f"DID cygno.raw:{w.catalogue_file} is under embargo until 2099-01-01T00:00:00+00:00 in the run catalogue",
    )
    expect_ok(out[1:3])
    _embargo_denied(out[3], "in the run catalogue", f"(through cygno.raw:{w.catalogue_file})")
    assert out[4].result["run_embargo_until"].startswith("2099-01-01")


# -- route 5: replica registration on a public RSE, path aliases and PFNs outside the RSE -------
def test_replica_registration_on_public_rse_and_foreign_paths(hw: Hostile) -> None:
    w = hw
    scope, mine = w.scope(w.plain), f"alias-{w.tag()}"
    real = {"scope": "cygno.raw", "name": w.raw_file, "bytes": 4096, "adler32": "00000001"}
    site_a = w.lake.paths.data / "rses" / "SITE_A_DISK"
    alias = f"/../../../../cygno.raw/{w.run // 1000:04d}/{w.run:06d}/{w.raw_file}"
    dm_scope = w.scope(w.dm)
    dm = w.dm.run(
        ("add_replicas", [w.public, [real]], {}),  # 0: generic would allow anyone (SCRATCHDISK)
        ("add_dataset", [dm_scope, mine], {}),
        ("attach_dids", [dm_scope, mine, [real]], {"rse": w.public}),  # 2
    )
    out = w.plain.run(
        ("add_replicas", [w.public, [real]], {}),  # 0: a plain account meets the raw-scope rule first
        ("add_dataset", [scope, mine], {}),
        ("list_content", [scope, mine], {}),  # 2: placeholder, checked below
        (
            "attach_dids",
            [scope, mine, [{**fake_file(scope, f"x-{w.tag()}"), "pfn": "file://localhost/etc/passwd"}]],
            {"rse": w.public},
        ),  # 3: explicit PFN outside the RSE
        (
            "attach_dids",
            [scope, mine, [{**fake_file(scope, f"y-{w.tag()}"), "pfn": f"file://localhost{site_a}/../x"}]],
            {"rse": "SITE_A_DISK"},
        ),  # 4: '..' inside the prefix
        ("attach_dids", [scope, mine, [{**fake_file(scope, alias), "adler32": "00000001"}]], {"rse": "SITE_A_DISK"}),
    )
    _embargo_denied(
        dm[0],
        f"DID cygno.raw:{w.raw_file} is under embargo until 2099",
        f"registering a replica of it on public RSE {w.public}",
    )
    assert dm[1].ok, dm[1]
    _embargo_denied(dm[2], f"cygno.raw:{w.raw_file}", f"public RSE {w.public}")
    assert out[0].denied("Registering replicas in raw scope cygno.raw"), out[0]
    assert out[1].ok and out[2].ok, out[:3]
    assert out[3].denied("PFN 'file://localhost/etc/passwd' lies outside the RSE's storage"), out[3]
    assert out[4].denied("has a '.' or '..' segment"), out[4]
    # The alias name: refused by the naming schema or by the derived-PFN check, never registered.
    assert not out[5].ok and out[5].error in ("AccessDenied", "InvalidObject"), out[5]
    content = expect_ok([w.plain.call("list_content", scope, mine)])[0].result
    assert content == [], content


# -- rules moved or updated -------------------------------------------------------------------
def test_move_and_update_rule_cannot_publish(hw: Hostile) -> None:
    w = hw
    scope, mine = w.scope(w.dm), f"dmmove-{w.tag()}"
    out = w.dm.run(
        ("add_dataset", [scope, mine], {}),
        ("attach_dids", [scope, mine, [{"scope": "cygno.raw", "name": w.raw_file}]], {}),
        _rule(scope, mine, "SITE_B_DISK"),
    )
    expect_ok(out)
    rid = out[2].result[0]
    moved = w.dm.run(
        ("move_replication_rule", [rid, w.public, {}], {}),  # data managers may move rules, not publish
        ("move_replication_rule", [w.raw_rule, w.public, {}], {}),
    )
    _embargo_denied(moved[0], f"DID {scope}:{mine} is under embargo until 2099", f"public RSE(s) {w.public}")
    _embargo_denied(moved[1], f"DID cygno.raw:{w.raw_ds} is under embargo until 2099")
    # The plain account may not move or retarget rules at all (generic), with a reason.
    plain = w.plain.run(
        ("move_replication_rule", [w.raw_rule, w.public, {}], {}),
        ("update_replication_rule", [w.raw_rule, {"lifetime": 1}], {}),
    )
    assert plain[0].denied("protected because its scope cygno.raw holds raw data"), plain[0]
    assert plain[1].denied("protected because its scope cygno.raw holds raw data"), plain[1]


# -- subscriptions ----------------------------------------------------------------------------
def test_subscriptions_to_public_rses_are_refused(hw: Hostile) -> None:
    w = hw
    sub = f"hostile-{w.tag()}"
    filter_ = {"scope": ["cygno.raw"], "pattern": "run.*"}
    public_rules = [{"copies": 1, "rse_expression": w.public, "activity": "User Subscriptions"}]
    private_rules = [{"copies": 1, "rse_expression": "SITE_B_DISK", "activity": "User Subscriptions"}]
    common = {"comments": "hostile", "lifetime": False, "retroactive": False, "dry_run": True}
    plain = w.plain.call("add_subscription", sub, w.plain.account, filter_, public_rules, **common)
    assert plain.denied("Rucio's generic policy denies 'add_subscription'"), plain
    out = w.admin.run(
        ("add_subscription", [sub, w.admin.account, filter_, public_rules], common),
        ("add_subscription", [sub, w.admin.account, filter_, private_rules], common),
        ("update_subscription", [sub], {"account": w.admin.account, "replication_rules": public_rules}),
    )
    assert out[0].denied("without any permission check", f"public RSE(s) {w.public}", "'embargo-admin'"), out[0]
    assert out[1].ok, out[1]
    assert out[2].denied(f"public RSE(s) {w.public}"), out[2]
    # A subscription an embargo admin made public cannot be re-aimed by a new filter from an 'admin'.
    eadmin_sub = f"hostile-pub-{w.tag()}"
    assert w.root.call("add_subscription", eadmin_sub, w.admin.account, filter_, public_rules, **common).ok
    refilter = w.admin.call("update_subscription", eadmin_sub, account=w.admin.account, filter_=filter_)
    assert refilter.denied(f"public RSE(s) {w.public}"), refilter


def test_only_root_grants_the_roles_that_lift_protection(hw: Hostile) -> None:
    w = hw
    out = w.admin.run(
        ("add_account_attribute", [w.admin.account, "embargo-admin", "True"], {}),
        ("add_account_attribute", [w.plain.account, "data-manager", "True"], {}),
    )
    for o in out:
        assert o.denied("lifts inlet's embargo or raw-data protection: only root grants it"), o
    attrs = expect_ok([w.root.call("list_account_attributes", w.admin.account)])[0].result
    assert "embargo-admin" not in str(attrs)


# -- shortening or lifting through metadata and detach --------------------------------------------
def test_embargo_cannot_be_shortened_by_any_metadata_call(hw: Hostile) -> None:
    w = hw
    scope, own = w.scope(w.collab), f"emb-{w.tag()}"
    expect_ok([w.collab.call("add_dataset", scope, own, meta={"embargo_until": FUTURE})])
    out = w.collab.run(
        ("set_metadata", [scope, own, "embargo_until", "2021-01-01"], {}),
        ("set_metadata_bulk", [scope, own, {"embargo_until": "2021-01-01"}], {}),
        ("set_dids_metadata_bulk", [[{"scope": scope, "name": own, "meta": {"embargo_until": None}}]], {}),
        ("set_metadata", [scope, own, "embargo_until", "not a date"], {}),
        ("get_metadata", [scope, own], {"plugin": "JSON"}),
        ("set_metadata", [scope, own, "lifetime", 1], {}),  # the undertaker would delete it
    )
    for o in out[:3]:
        assert o.denied("may shorten or lift an embargo"), o
    assert out[3].denied("is not an ISO 8601 date"), out[3]
    assert out[4].result["embargo_until"] == FUTURE
    assert out[5].denied("giving it a lifetime would lift"), out[5]


def test_detach_from_an_embargoed_dataset_is_refused(hw: Hostile) -> None:
    w = hw
    scope, own = w.scope(w.dm), f"detach-{w.tag()}"
    out = w.dm.run(
        ("add_dataset", [scope, own], {"meta": {"embargo_until": FUTURE}}),
        ("attach_dids", [scope, own, [{"scope": "cygno.raw", "name": w.raw_file}]], {}),
        ("detach_dids", [scope, own, [{"scope": "cygno.raw", "name": w.raw_file}]], {}),
    )
    expect_ok(out[:2])
    _embargo_denied(out[2], f"DID {scope}:{own} is under embargo until 2099", "would lift the embargo")


# -- raw scopes -------------------------------------------------------------------------------
def test_outsiders_create_nothing_in_raw_scopes(hw: Hostile) -> None:
    w = hw
    scope, mine = w.scope(w.plain), f"rawgrab-{w.tag()}"
    newraw = [fake_file("cygno.raw", f"run{w.run + 9:06d}.mid.gz")]
    why = ("in raw scope cygno.raw", "reserved to root and accounts with the 'data-manager' attribute")
    out = w.plain.run(
        ("add_dataset", ["cygno.raw", f"run{w.run + 9:06d}.raw"], {}),
        ("add_dataset", [scope, mine], {}),
        ("attach_dids", [scope, mine, newraw], {"rse": "SITE_A_DISK"}),
        ("add_replicas", [w.public, newraw], {}),  # generic would allow (SCRATCHDISK)
        ("add_dataset", [scope, f"{mine}-b"], {"files": newraw, "rse": "SITE_A_DISK"}),
        ("get_did", ["cygno.raw", newraw[0]["name"]], {}),
    )
    assert out[0].error == "AccessDenied", out[0]
    assert out[1].ok, out[1]
    for o in out[2:5]:
        assert o.denied(*why), o
    assert out[5].error == "DataIdentifierNotFound", out[5]
    # A data manager may (that is how raw data get repaired by hand).
    dm_scope, dm_ds = w.scope(w.dm), f"rawfix-{w.tag()}"
    ok = w.dm.run(
        ("add_dataset", [dm_scope, dm_ds], {}),
        ("attach_dids", [dm_scope, dm_ds, newraw], {"rse": "SITE_A_DISK"}),
    )
    expect_ok(ok)


# -- delete_replicas and signed URLs ----------------------------------------------------------
def test_locked_raw_replica_cannot_be_deleted(hw: Hostile) -> None:
    w = hw
    target = [{"scope": "cygno.raw", "name": w.raw_file}]
    for actor in (w.plain, w.dm, w.admin, w.root):
        out = actor.call("delete_replicas", "SITE_A_DISK", target)
        assert out.denied("Nobody deletes replicas on SITE_A_DISK directly"), (actor.account, out)
    rule = expect_ok([w.root.call("get_replication_rule", w.raw_rule)])[0].result
    assert rule["state"] in ("OK", "REPLICATING"), rule
    reps = expect_ok([w.root.call("list_replicas", target)])[0].result
    assert "SITE_A_DISK" in reps[0]["rses"]


def test_signed_urls_only_for_collaboration(hw: Hostile) -> None:
    w = hw
    args = ("SITE_A_DISK", "s3", "read", "https://127.0.0.1:9000/bucket/key")
    assert w.plain.call("get_signed_url", *args).denied("lacks the 'collaboration' attribute")
    assert w.collab.call("get_signed_url", *args).error != "AccessDenied"


# -- the end: nothing of the embargoed data reached the public RSE ------------------------------
def test_no_embargoed_replica_rule_or_byte_on_the_public_rse(hw: Hostile) -> None:
    """Runs last in this module: whatever was accepted above, nothing embargoed went public."""
    w = hw
    embargoed = [
        {"scope": "cygno.raw", "name": n} for n in (w.raw_file, w.own_embargo_file, w.catalogue_file, w.raw_ds)
    ]
    out = expect_ok(
        w.root.run(
            ("list_replicas", [embargoed[:3]], {"all_states": True}),
            ("list_replicas", [embargoed[:3]], {"all_states": True, "rse_expression": w.public}),
            *(("list_associated_rules_for_file", [d["scope"], d["name"]], {}) for d in embargoed[:3]),
        )
    )
    assert all(w.public not in r["rses"] for r in out[0].result), out[0]
    assert out[1].result == [] or all(not r["rses"] for r in out[1].result), out[1]
    for o in out[2:]:
        assert all(w.public not in str(r["rse_expression"]) for r in o.result), o.result
    files = [p for p in w.public_dir.rglob("*") if p.is_file()] if w.public_dir.exists() else []
    assert files == [], files
