"""rucio_inlet inside the real Rucio server: schema, lfn2pfn and permissions over the REST API.

Every call goes through Rucio's standard Python client in a child process authenticated as one
account (Rucio reads its configuration and token file once per process): root, a data manager
(account attribute data-manager), a plain collaboration member (collaboration), an embargo admin
(embargo-admin) and an outsider with no attribute. Accounts, the public RSE and the DIDs get a
per-run suffix, so the tests can run again on the same lake.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rucio_inlet.naming import NamingSettings

from inlet.lake.lake import Lake
from inlet.lake.services.base import venv_bin
from tests.integration.actors import FUTURE, PASSWORD, PAST, Actor, expect_ok
from tests.integration.actors import fake_file as _file
from tests.integration.actors import posix_protocol as _posix_protocol


@dataclass
class World:
    lake: Lake
    root: Actor
    dm: Actor
    collab: Actor
    outsider: Actor
    eadmin: Actor
    admin: Actor
    public_rse: str
    run: int
    rules: dict[str, str]

    def name(self, offset: int, suffix: str) -> str:
        return f"run{self.run + offset:06d}{suffix}"


@pytest.fixture(scope="module")
def world(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("policies")
    sfx = uuid.uuid4().hex[:6]
    r = lake.settings.rucio
    root = Actor("root", lake, work, r.username, r.password)
    names = {
        "dm": f"pdm{sfx}",
        "collab": f"pcol{sfx}",
        "outsider": f"pout{sfx}",
        "eadmin": f"pemb{sfx}",
        "admin": f"padm{sfx}",
    }
    attrs = {
        "dm": ["data-manager"],
        "collab": ["collaboration"],
        "outsider": [],
        "eadmin": ["embargo-admin"],
        "admin": ["admin"],  # Rucio's generic super-user: still not a data manager
    }
    public = f"POLPUB-{sfx.upper()}"
    calls: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("add_rse", [public], {}),
        ("add_protocol", [public, _posix_protocol(lake.paths.data / "rses" / public)], {}),
        ("add_rse_attribute", [public, "public", True], {}),
        ("add_rse_attribute", [public, "lfn2pfn_algorithm", "inlet_run"], {}),
        ("add_distance", ["SITE_A_DISK", public, {"distance": 1}], {}),
        ("set_local_account_limit", [r.account, public, 10**12], {}),
    ]
    for role, account in names.items():
        calls += [
            ("add_account", [account, "USER", f"{account}@localhost"], {}),
            ("add_identity", [account, account, "USERPASS", f"{account}@localhost"], {"password": PASSWORD}),
        ]
        calls += [("add_account_attribute", [account, key, "True"], {}) for key in attrs[role]]
        calls += [
            ("set_local_account_limit", [account, rse, 10**12], {})
            for rse in ("SITE_A_DISK", "SITE_B_DISK", "TAPE", public)
        ]
    calls.append(("add_scope", [names["collab"], f"user.{names['collab']}"], {}))
    run = random.randint(100000, 899000)  # unique names per test run
    w = World(lake, root, *(Actor(a, lake, work, a, PASSWORD) for a in names.values()), public, run, {})
    raw_ds, raw_file = w.name(0, ".raw"), w.name(0, ".mid.gz")
    reco_file = w.name(0, "_reco_v1.root")
    calls += [
        ("add_replicas", ["SITE_A_DISK", [_file("cygno.raw", raw_file), _file("cygno.reco", reco_file)]], {}),
        ("add_dataset", ["cygno.raw", raw_ds], {}),
        ("attach_dids", ["cygno.raw", raw_ds, [{"scope": "cygno.raw", "name": raw_file}]], {}),
    ]
    # Embargoed datasets (offsets 1..3): future, past, unreadable date; each with one file.
    for offset, until in ((1, FUTURE), (2, PAST), (3, "soon")):
        ds, f = w.name(offset, ".raw"), w.name(offset, ".mid.gz")
        calls += [
            ("add_replicas", ["SITE_A_DISK", [_file("cygno.raw", f)]], {}),
            ("add_dataset", ["cygno.raw", ds], {}),
            ("attach_dids", ["cygno.raw", ds, [{"scope": "cygno.raw", "name": f}]], {}),
            ("set_metadata", ["cygno.raw", ds, "embargo_until", until], {}),
        ]
    calls += [
        ("add_replication_rule", [[{"scope": "cygno.raw", "name": raw_ds}], 1, "SITE_B_DISK"], {}),
        ("add_replication_rule", [[{"scope": "cygno.reco", "name": reco_file}], 2, "TAPE|SITE_B_DISK"], {}),
        ("add_replication_rule", [[{"scope": "cygno.reco", "name": reco_file}], 1, "SITE_B_DISK"], {}),
    ]
    out = expect_ok(root.run(*calls))
    w.rules = {"raw": out[-3].result[0], "tape": out[-2].result[0], "reco": out[-1].result[0]}
    for actor in (w.dm, w.collab, w.outsider, w.eadmin, w.admin):
        actor.start()
    yield w
    for actor in (w.root, w.dm, w.collab, w.outsider, w.eadmin, w.admin):
        actor.close()


# -- schema ------------------------------------------------------------------------------------
def test_schema_accepts_the_name_table(world: World) -> None:
    w = world
    table = [
        ("cygno.raw", w.name(10, ".mid.gz"), "file"),
        ("cygno.raw", w.name(10, "_pmt_0001.mid.gz"), "file"),
        ("cygno.raw", w.name(10, ".raw"), "dataset"),
        ("cygno.raw", w.name(10, "_pmt.raw"), "dataset"),
        ("cygno.reco", w.name(10, "_reco_v2.root"), "file"),
        ("cygno.reco", w.name(10, ".reco"), "dataset"),
        ("kloe.raw", w.name(10, "_ksl_0001.ybos"), "file"),
        ("kloe.raw", w.name(10, "_ksl.raw"), "dataset"),
        ("test", f"anything-{uuid.uuid4().hex[:8]}.dat", "file"),
        ("user.root", f"my_notes.{uuid.uuid4().hex[:8]}.txt", "file"),
    ]
    calls = [
        ("add_replicas", ["SITE_A_DISK", [_file(s, n)]], {}) if kind == "file" else ("add_dataset", [s, n], {})
        for s, n, kind in table
    ]
    assert all(o.ok for o in w.root.run(*calls)), table


def test_schema_refuses_with_the_expected_pattern(world: World) -> None:
    w = world
    naming = NamingSettings()
    table = [
        ("cygno.raw", "bad.dat", "file"),
        ("cygno.raw", f"run{w.run % 100000:05d}.mid.gz", "file"),
        ("cygno.raw", w.name(11, ".reco"), "dataset"),
        ("cygno.reco", w.name(11, ".mid.gz"), "file"),
        ("kloe.raw", w.name(11, ".ybos"), "file"),
    ]
    calls = [
        ("add_replicas", ["SITE_A_DISK", [_file(s, n)]], {}) if kind == "file" else ("add_dataset", [s, n], {})
        for s, n, kind in table
    ]
    for (scope, name, _), out in zip(table, w.root.run(*calls), strict=True):
        assert out.error == "InvalidObject", (name, out)
        msg = out.message.replace("\\\\", "\\")
        assert f"'{name}' does not match" in msg
        assert naming.name_regex(scope) in msg
        assert f"names in scope {scope} must match one of" in msg
        assert "(e.g. " in msg and naming.examples(scope)[0] in msg
    # Nothing was registered.
    assert all(o.error == "DataIdentifierNotFound" for o in w.root.run(*(("get_did", [s, n], {}) for s, n, _ in table)))


def test_schema_scopes(world: World) -> None:
    out = world.root.run(
        ("add_scope", ["root", "cygno.bogus"], {}),
        ("add_scope", ["root", "a.b.c"], {}),
        ("add_scope", ["root", f"user.{world.dm.account}"], {}),
    )
    for o in out[:2]:
        assert o.error == "InvalidObject" and "Scope name: an experiment scope (cygno.raw" in o.message, o
    assert out[2].ok, out[2]


# -- lfn2pfn -----------------------------------------------------------------------------------
def test_lfn2pfn_run_partitioned_via_server_and_real_upload(world: World, tmp_path: Path) -> None:
    w = world
    run = w.run + 20
    name = f"run{run:06d}.mid.gz"
    pfns = w.root.call("lfns2pfns", "SITE_A_DISK", [f"cygno.raw:{name}", "test:plain.dat"], operation="write")
    assert pfns.ok, pfns
    prefix = f"file://localhost{w.lake.paths.data}/rses/SITE_A_DISK/"
    assert pfns.result[f"cygno.raw:{name}"] == f"{prefix}cygno.raw/{run // 1000:04d}/{run:06d}/{name}"
    assert pfns.result["test:plain.dat"] == f"{prefix}test/19/49/plain.dat"  # Rucio's hash layout
    # The standard CLI puts the bytes exactly there.
    src = tmp_path / name
    src.write_bytes(os.urandom(2048))
    res = subprocess.run(
        [venv_bin("rucio"), "upload", "--rse", "SITE_A_DISK", "--scope", "cygno.raw", str(src)],
        env=w.root.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    stored = w.lake.paths.data / "rses" / "SITE_A_DISK" / "cygno.raw" / f"{run // 1000:04d}" / f"{run:06d}" / name
    assert stored.read_bytes() == src.read_bytes(), res.stderr[-2000:]


# -- raw protection ----------------------------------------------------------------------------
def test_raw_rules_only_data_managers_delete(world: World) -> None:
    w = world
    rid = w.rules["raw"]
    why = ("protected because its scope cygno.raw holds raw data", "'data-manager' attribute may delete")
    # Even an 'admin' account, which Rucio's generic policy lets delete any rule, is refused.
    for actor in (w.collab, w.outsider, w.eadmin, w.admin):
        out = actor.call("delete_replication_rule", rid)
        assert out.denied(*why), (actor.account, out)
    out = w.collab.call("update_replication_rule", rid, {"lifetime": 10})
    assert out.denied("protected because its scope cygno.raw holds raw data", "change the lifetime"), out
    assert w.dm.call("delete_replication_rule", rid).ok


def test_tape_copies_only_data_managers_reduce(world: World) -> None:
    w = world
    rid = w.rules["tape"]
    out = w.collab.call("reduce_replication_rule", rid, 1)
    assert out.denied("it keeps copies on TAPE (TAPE)", "'data-manager' attribute may reduce the copies of"), out
    out = w.outsider.call("delete_replication_rule", rid)
    assert out.denied("it keeps copies on TAPE"), out
    # Permission granted: whatever Rucio says next, it is not a denial.
    assert w.admin.call("reduce_replication_rule", rid, 1).denied("it keeps copies on TAPE")
    assert w.dm.call("reduce_replication_rule", rid, 1).error != "AccessDenied"


def test_other_rules_follow_generic_with_a_reason(world: World) -> None:
    w = world
    out = w.collab.call("delete_replication_rule", w.rules["reco"])
    assert out.denied("Rucio's generic policy denies 'del_rule'"), out
    assert w.dm.call("delete_replication_rule", w.rules["reco"]).ok


def test_nobody_deletes_replicas_directly(world: World) -> None:
    """Rucio's generic rule, kept by inlet: delete_replicas would remove a replica whatever its
    locks (issue 13 deleted a raw replica under an OK rule). Root and data managers included."""
    w = world
    name = f"del-{uuid.uuid4().hex[:8]}.dat"
    expect_ok([w.root.call("add_replicas", "SITE_A_DISK", [_file("test", name)])])
    for actor in (w.outsider, w.collab, w.dm, w.admin, w.root):
        out = actor.call("delete_replicas", "SITE_A_DISK", [{"scope": "test", "name": name}])
        assert out.denied("Nobody deletes replicas on SITE_A_DISK directly", "Delete or reduce the rule"), out
    replicas = expect_ok(w.root.run(("list_replicas", [[{"scope": "test", "name": name}]], {})))[0].result
    assert [list(r["rses"]) for r in replicas] == [["SITE_A_DISK"]]


# -- embargo -----------------------------------------------------------------------------------
def _rule(w: World, offset: int, suffix: str, rse: str, **kw: Any) -> tuple[str, list[Any], dict[str, Any]]:
    return ("add_replication_rule", [[{"scope": "cygno.raw", "name": w.name(offset, suffix)}], 1, rse], kw)


def test_embargo_blocks_public_rules_until_the_date(world: World) -> None:
    w = world
    future_ds, future_file = w.name(1, ".raw"), w.name(1, ".mid.gz")
    out = w.collab.run(
        _rule(w, 1, ".raw", w.public_rse),  # future embargo, public RSE
        _rule(w, 1, ".mid.gz", w.public_rse),  # its file, through the dataset
        _rule(w, 1, ".raw", "SITE_B_DISK"),  # private RSE: fine
        _rule(w, 2, ".raw", w.public_rse),  # embargo passed: fine
        _rule(w, 3, ".raw", w.public_rse),  # unreadable date: embargoed
        _rule(w, 1, ".raw", f"public=True&{w.public_rse}"),  # by attribute expression
    )
    assert out[0].denied(
        f"DID cygno.raw:{future_ds} is under embargo until 2099-01-01T00:00:00+00:00",
        f"public RSE(s) {w.public_rse}",
        "'embargo-admin' attribute",
        "inlet embargo release",
    ), out[0]
    assert out[1].denied(f"DID cygno.raw:{future_file} is under embargo", f"(through cygno.raw:{future_ds})"), out[1]
    assert out[2].ok, out[2]
    assert out[3].ok, out[3]
    assert out[4].denied("has an unreadable embargo_until='soon', which counts as embargoed"), out[4]
    assert out[5].denied("is under embargo until 2099"), out[5]
    # The outsider is refused the same way (and may not add rules for others at all).
    other = w.outsider.run(_rule(w, 1, ".raw", w.public_rse), _rule(w, 2, ".raw", "SITE_B_DISK", account="root"))
    assert other[0].denied("is under embargo until 2099"), other[0]
    assert other[1].denied("may only add unlocked rules owned by itself"), other[1]


def test_embargo_admin_and_root_may_publish_early(world: World) -> None:
    w = world
    out = w.eadmin.run(_rule(w, 1, ".raw", w.public_rse))
    assert out[0].ok, out[0]
    assert w.root.run(_rule(w, 1, ".mid.gz", w.public_rse))[0].ok


def test_only_embargo_admins_shorten_an_embargo(world: World) -> None:
    w = world
    ds = w.name(1, ".raw")
    # The dataset's owner is root; give the collaborator a dataset of its own to be sure the
    # refusal comes from the embargo rule and not from scope ownership.
    scope = f"user.{w.collab.account}"
    own = f"embargoed-{uuid.uuid4().hex[:6]}"
    expect_ok(
        w.collab.run(("add_dataset", [scope, own], {}), ("set_metadata", [scope, own, "embargo_until", FUTURE], {}))
    )
    out = w.collab.run(
        ("set_metadata", [scope, own, "embargo_until", "2021-01-01"], {}),
        ("set_metadata", [scope, own, "embargo_until", "2100-01-01"], {}),  # extending is fine
    )
    assert out[0].denied("may shorten or lift an embargo"), out[0]
    assert out[1].ok, out[1]
    assert w.root.call("set_metadata", "cygno.raw", ds, "embargo_until", "2098-01-01").ok


def test_embargoed_data_cannot_be_attached_under_a_public_rule(world: World) -> None:
    w = world
    scope = f"user.{w.collab.account}"
    tag = uuid.uuid4().hex[:6]
    cont, secret, open_ds = f"pubcont-{tag}", f"secret-{tag}", f"open-{tag}"
    out = w.collab.run(
        ("add_container", [scope, cont], {}),
        ("add_replication_rule", [[{"scope": scope, "name": cont}], 1, w.public_rse], {}),
        ("add_dataset", [scope, secret], {}),
        ("set_metadata", [scope, secret, "embargo_until", FUTURE], {}),
        ("add_dataset", [scope, open_ds], {}),
        ("attach_dids", [scope, cont, [{"scope": scope, "name": secret}]], {}),
        ("attach_dids", [scope, cont, [{"scope": scope, "name": open_ds}]], {}),
    )
    expect_ok(out[:5])
    assert out[5].denied(
        f"Attaching {scope}:{secret} (under embargo: embargo_until={FUTURE}",
        f"to {scope}:{cont} would copy it to public RSE(s) {w.public_rse} through rule {out[1].result[0]}",
    ), out[5]
    assert out[6].ok, out[6]


def test_embargoed_did_cannot_be_created_with_a_public_rule(world: World) -> None:
    w = world
    scope = f"user.{w.collab.account}"
    tag = uuid.uuid4().hex[:6]
    meta = {"embargo_until": FUTURE}

    def rule(rse: str) -> list[dict[str, Any]]:
        return [{"copies": 1, "rse_expression": rse, "account": w.collab.account}]

    out = w.collab.run(
        ("add_dataset", [scope, f"born-public-{tag}"], {"meta": meta, "rules": rule(w.public_rse)}),
        ("add_dataset", [scope, f"born-private-{tag}"], {"meta": meta, "rules": rule("SITE_B_DISK")}),
    )
    assert out[0].denied(
        f"DID {scope}:born-public-{tag} is created under embargo (embargo_until={FUTURE})",
        f"rule to public RSE(s) {w.public_rse}",
    ), out[0]
    assert out[1].ok, out[1]


# -- signed URLs -------------------------------------------------------------------------------
def test_signed_urls_only_for_collaboration(world: World) -> None:
    w = world
    args = ("SITE_A_DISK", "s3", "read", "https://127.0.0.1:9000/bucket/key")
    out = w.outsider.call("get_signed_url", *args)
    assert out.denied(f"account {w.outsider.account} lacks the 'collaboration' attribute"), out
    assert w.dm.call("get_signed_url", *args).denied("'collaboration' attribute")
    # Collaboration members and root pass the permission check (signing itself needs the
    # RSE's S3 credentials, which this RSE does not have).
    for actor in (w.collab, w.root):
        assert actor.call("get_signed_url", *args).error != "AccessDenied"
