"""Hostile names and paths on the real lake: refused by the server with a reason, never an HTTP 500,
and no storage path that leaves its RSE, whoever asks.

A plain account (no attribute) with its own user scope tries the issue's alias attack and a
table of hostile names in experiment and generic scopes, through the body routes of the standard
client (``add_replicas``, ``attach_dids``, ``add_dataset`` with content); root adds Rucio's
conventional ``user.<Name>`` and ``group.<name>`` scopes and uses them; a replica registered with
a path outside its RSE is then handed to Rucio's own deletion code (the RSE manager, loading the
RSE's protocol as the server declares it, as the reaper does) and the file outside survives.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from inlet.lake.lake import Lake
from tests.integration.actors import PASSWORD, Actor, Outcome, expect_ok, posix_protocol

ALIAS = "/../../../../cygno.raw/0912/912345/run912345.mid.gz"
#: What gunicorn lets through in Rucio's ExceptionMessage header; a 500 comes back without it.
NO_INFORMATION = "no error information passed"


@dataclass
class Hostile:
    lake: Lake
    root: Actor
    plain: Actor
    scope: str
    sfx: str


def _file(scope: str, name: str) -> dict[str, Any]:
    return {"scope": scope, "name": name, "bytes": 1000, "adler32": "0a0b0c0d"}


@pytest.fixture(scope="module")
def hostile(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    work = tmp_path_factory.mktemp("hostile")
    sfx = uuid.uuid4().hex[:6]
    r = lake.settings.rucio
    root = Actor("root", lake, work, r.username, r.password)
    account = f"hpl{sfx}"
    scope = f"user.{account}"
    expect_ok(
        root.run(
            ("add_account", [account, "USER", f"{account}@localhost"], {}),
            ("add_identity", [account, account, "USERPASS", f"{account}@localhost"], {"password": PASSWORD}),
            ("add_scope", [account, scope], {}),
            *(("set_local_account_limit", [account, rse, 10**12], {}) for rse in ("SITE_A_DISK", "SITE_B_DISK")),
        )
    )
    h = Hostile(lake, root, Actor(account, lake, work, account, PASSWORD), scope, sfx)
    yield h
    h.root.close()
    h.plain.close()


# Registers replicas straight in Rucio's database, as root, without the REST API or its policy:
# how a replica registered before inlet's policy was installed (or by database access) looks.
_BEHIND_THE_POLICY = r"""
import json, sys
from rucio.common.types import InternalAccount, InternalScope
from rucio.core.replica import add_replicas
from rucio.core.rse import get_rse_id
rse, files = sys.argv[1], json.loads(sys.argv[2])
for f in files:
    f["scope"] = InternalScope(f["scope"])
add_replicas(rse_id=get_rse_id(rse=rse), files=files, account=InternalAccount("root"))
print("REGISTERED")
"""


def register_behind_the_policy(h: Hostile, rse: str, files: list[dict[str, Any]]) -> None:
    """The policy refuses such a replica through the API (first line of defence); this puts one in
    anyway, so that the storage layer, the second line, can be shown to refuse it too."""
    import json
    import subprocess
    import sys

    refused = h.root.run(("add_replicas", [rse, files], {}))[0]
    assert refused.error == "AccessDenied" and "a replica must be a file of the RSE" in refused.message, refused
    res = subprocess.run(
        [sys.executable, "-c", _BEHIND_THE_POLICY, rse, json.dumps(files)],
        env=h.root.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "REGISTERED" in res.stdout, res.stderr[-2000:]


def refused(out: Outcome, *fragments: str) -> bool:
    """Refused by the schema with a reason, not with a bare HTTP 500."""
    return (
        out.error == "InvalidObject" and NO_INFORMATION not in out.message and all(f in out.message for f in fragments)
    )


# -- the alias attack -------------------------------------------------------------------
def test_alias_attack_is_refused_with_the_reason(hostile: Hostile) -> None:
    h = hostile
    ds = f"alias-{h.sfx}"
    embargoed = _file(h.scope, ALIAS)
    out = h.plain.run(
        ("add_dataset", [h.scope, ds], {}),
        ("attach_dids", [h.scope, ds, [embargoed]], {"rse": "SITE_A_DISK"}),
        ("add_replicas", ["SITE_A_DISK", [embargoed]], {}),
        ("add_dataset", [h.scope, f"{ds}-2"], {"files": [embargoed], "rse": "SITE_A_DISK"}),
        (
            "attach_dids",
            [h.scope, ds, [_file(h.scope, "a/../../../../cygno.raw/0912/run.mid.gz")]],
            {"rse": "SITE_A_DISK"},
        ),
    )
    assert out[0].ok, out[0]
    for o in out[1:4]:
        assert refused(o, "must not start with '/'"), o
    assert refused(out[4], "'.' or '..' path segment"), out[4]
    # Nothing was registered, under either name.
    listed = h.root.call("list_content", h.scope, ds)
    assert listed.ok and listed.result == [], listed


# -- hostile names in experiment and generic scopes ------------------------------------------------
HOSTILE = {
    "trailing newline": "run{run}.mid.gz\n",
    "arabic-indic digits": "run\u0660\u0661\u0662\u0663\u0664\u0665.mid.gz",
    "devanagari digits": "run\u0967\u0968\u0969\u096a\u096b\u096c.mid.gz",
    "control character": "run{run}\x01.mid.gz",
    "NUL": "run{run}\x00.mid.gz",
    "DEL": "run{run}\x7f.mid.gz",
    "leading slash": "/run{run}.mid.gz",
    "dot-dot segment": "x/../run{run}.mid.gz",
    "dot segment": "./run{run}.mid.gz",
    "empty segment": "x//run{run}.mid.gz",
}


@pytest.mark.parametrize("scope", ["cygno.raw", "test", "USER"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_names_refused_with_a_message(hostile: Hostile, scope: str, kind: str) -> None:
    h = hostile
    scope = h.scope if scope == "USER" else scope
    name = HOSTILE[kind].format(run=f"{912000 + int(h.sfx, 16) % 999:06d}")
    actor = h.root if scope == "cygno.raw" else h.plain  # raw scopes are for data managers and root
    out = actor.run(
        ("add_replicas", ["SITE_A_DISK", [_file(scope, name)]], {}),
        ("attach_dids", [h.scope, f"names-{h.sfx}", [_file(scope, name)]], {"rse": "SITE_A_DISK"}),
    )
    for o in out:
        assert o.error in ("InvalidObject", "DataIdentifierNotFound"), (kind, o)
        assert NO_INFORMATION not in o.message, (kind, o)
    assert refused(out[0]), (kind, out[0])


def test_ascii_run_names_still_go_in(hostile: Hostile) -> None:
    h = hostile
    name = f"run{912000 + int(h.sfx, 16) % 999:06d}_pmt_0001.mid.gz"
    expect_ok(h.root.run(("add_replicas", ["SITE_A_DISK", [_file("cygno.raw", name)]], {})))


# -- Rucio's scope conventions -----------------------------------------------------------------
def test_user_and_group_scopes_can_be_added_and_used(hostile: Hostile) -> None:
    h = hostile
    user, group = f"user.JDoe{h.sfx}", f"group.phys{h.sfx}"
    out = h.root.run(
        ("add_scope", [h.plain.account, user], {}),
        ("add_scope", [h.plain.account, group], {}),
    )
    expect_ok(out)
    name = f"notes-{h.sfx}.txt"
    # Registering replicas on an RSE is root's (Rucio's generic rule); the scopes' owner builds on them.
    expect_ok(h.root.run(("add_replicas", ["SITE_A_DISK", [_file(user, name), _file(group, name)]], {})))
    expect_ok(
        h.plain.run(
            ("add_dataset", [group, f"ds-{h.sfx}"], {}),
            ("attach_dids", [group, f"ds-{h.sfx}", [{"scope": group, "name": name}]], {}),
            ("add_container", [user, f"all-{h.sfx}"], {}),
            ("attach_dids", [user, f"all-{h.sfx}", [{"scope": group, "name": f"ds-{h.sfx}"}]], {}),
        )
    )
    pfns = h.plain.call("lfns2pfns", "SITE_A_DISK", [f"{user}:{name}", f"{group}:{name}"], operation="write")
    assert pfns.ok, pfns
    prefix = f"file://localhost{h.lake.paths.data}/rses/SITE_A_DISK/"
    assert pfns.result[f"{user}:{name}"].startswith(f"{prefix}user/JDoe{h.sfx}/")
    assert pfns.result[f"{group}:{name}"].startswith(f"{prefix}group/phys{h.sfx}/")


def test_scopes_are_matched_whole(hostile: Hostile) -> None:
    h = hostile
    out = h.root.run(
        ("add_scope", ["root", f"grp{h.sfx}\n"], {}),
        ("add_scope", ["root", f"g\u0660{h.sfx}"], {}),
        ("add_scope", ["root", f"user.a.b{h.sfx}"], {}),
    )
    for o in out:
        assert refused(o), o


# -- a replica whose path escapes its RSE ---------------------------------------------------------
def test_replica_outside_its_rse_cannot_be_deleted(hostile: Hostile, tmp_path: Path) -> None:
    """A non-deterministic RSE takes any PFN under its prefix string: ``<prefix>/../victim``.

    Rucio's own deletion code (``rsemanager.delete``, what the reaper calls) loads the protocol the
    server declares for the RSE, the lake's confined POSIX protocol, which refuses.
    """
    from inlet.lake.topology import _POSIX_IMPL

    h = hostile
    rse = f"HOSTILE-{h.sfx.upper()}"
    prefix = h.lake.paths.data / "rses" / rse
    prefix.mkdir(parents=True)
    victim = prefix.parent / f"victim-{h.sfx}.dat"
    victim.write_bytes(b"must survive")
    protocol = posix_protocol(prefix, impl=_POSIX_IMPL)
    name = f"victim-{h.sfx}.dat"
    pfn = f"file://localhost{prefix}/../{victim.name}"
    expect_ok(
        h.root.run(
            ("add_rse", [rse], {"deterministic": False}),
            ("add_protocol", [rse, protocol], {}),
        )
    )
    register_behind_the_policy(h, rse, [{**_file("test", name), "pfn": pfn}])
    script = (
        "from rucio.rse import rsemanager as m\n"
        f"info = m.get_rse_info({rse!r})\n"
        "try:\n"
        f"    m.delete(info, [{{'scope': 'test', 'name': {name!r}, 'pfn': {pfn!r}}}])\n"
        "    print('DELETED')\n"
        "except Exception as exc:\n"
        "    print('REFUSED', type(exc).__name__, exc)\n"
    )
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", script], env=h.root.env, capture_output=True, text=True, timeout=120)
    assert "REFUSED" in res.stdout, (res.stdout, res.stderr[-2000:])
    assert "outside RSE" in res.stdout or "could resolve outside" in res.stdout, res.stdout
    assert victim.read_bytes() == b"must survive"


# -- the conveyor: a source outside its RSE is never copied ----------------------------------------
def test_conveyor_never_copies_a_source_outside_its_rse(hostile: Hostile) -> None:
    """The alias on the transfer side: a replica registered at ``<prefix>/../<embargoed file>``,
    with that file's checksum, is ruled to another RSE; the lake's conveyor (gfal2 transfertool)
    fails the transfer with the reason and no byte reaches the destination."""
    from inlet.lake.ports import wait_until
    from inlet.lake.topology import _POSIX_IMPL

    h = hostile
    rse = f"HOSTSRC-{h.sfx.upper()}"
    prefix = h.lake.paths.data / "rses" / rse
    prefix.mkdir(parents=True)
    secret = prefix.parent / f"secret-{h.sfx}.dat"
    data = b"embargoed bytes " * 64
    secret.write_bytes(data)
    adler = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    protocol = posix_protocol(prefix, impl=_POSIX_IMPL)
    name = f"alias-{h.sfx}.dat"
    pfn = f"file://localhost{prefix}/../{secret.name}"
    expect_ok(
        h.root.run(
            ("add_rse", [rse], {"deterministic": False}),
            ("add_protocol", [rse, protocol], {}),
            ("add_distance", [rse, "SITE_B_DISK", {"distance": 1}], {}),
        )
    )
    register_behind_the_policy(
        h, rse, [{"scope": "test", "name": name, "bytes": len(data), "adler32": adler, "pfn": pfn}]
    )
    out = expect_ok(h.root.run(("add_replication_rule", [[{"scope": "test", "name": name}], 1, "SITE_B_DISK"], {})))
    rule_id = out[-1].result[0]
    last: dict[str, Any] = {}

    def failed() -> bool:
        nonlocal last
        got = h.root.call("get_replication_rule", rule_id)
        last = got.result if got.ok else {"call": str(got)}
        return "OUTSIDE RSE" in str(last.get("error"))

    try:
        assert wait_until(failed, 180, interval=1.0), f"the rule never failed with the reason: {last}"
        assert "SOURCE OUTSIDE RSE" in str(last["error"]), last
        assert last["state"] != "OK"
        dst = h.root.call("lfns2pfns", "SITE_B_DISK", [f"test:{name}"], operation="write")
        assert dst.ok, dst
        assert not Path(urlparse(dst.result[f"test:{name}"]).path).exists()
        assert secret.read_bytes() == data
    finally:
        h.root.call("delete_replication_rule", rule_id, purge_replicas=True)


def test_every_layout_refuses_a_path_outside_the_rse(hostile: Hostile) -> None:
    """inlet's run layout (the lake's RSEs) and Rucio's hash layout (any RSE without the attribute,
    where the policy package's default algorithm applies) both refuse, and say why."""
    h = hostile
    rse = f"PLAIN-{h.sfx.upper()}"
    protocol = posix_protocol(h.lake.paths.data / "rses" / rse, impl="rucio_inlet.posix.Default")
    expect_ok(h.root.run(("add_rse", [rse], {}), ("add_protocol", [rse, protocol], {})))
    for target in (rse, "SITE_A_DISK"):
        ok = h.root.call("lfns2pfns", target, ["test:plain-name.dat"], operation="write")
        assert ok.ok and ok.result["test:plain-name.dat"].endswith("/test/75/fe/plain-name.dat"), ok
        for name in (ALIAS, "a/../../../b"):
            out = h.root.call("lfns2pfns", target, [f"test:{name}"], operation="write")
            assert not out.ok, (target, name, out)
            assert "refusing a storage path" in out.message and "could leave the RSE prefix" in out.message, out


def test_bulk_add_dids_applies_the_naming_rules(hostile: Hostile) -> None:
    """Rucio's bulk add_dids skips the DID schema; the policy applies the same rules there."""
    h = hostile
    out = h.plain.run(
        ("add_dids", [[{"scope": h.scope, "name": ALIAS, "type": "DATASET"}]], {}),
        ("add_dids", [[{"scope": h.scope, "name": f"ok/../../x-{h.sfx}", "type": "DATASET"}]], {}),
        ("add_dids", [[{"scope": h.scope, "name": f"bulk\u0661-{h.sfx}", "type": "DATASET"}]], {}),
        ("add_dids", [[{"scope": h.scope, "name": f"bulk-{h.sfx}", "type": "DATASET"}]], {}),
    )
    assert out[0].error == "AccessDenied" and "starts with '/'" in out[0].message, out[0]
    assert out[1].error == "AccessDenied" and "'..' path segment" in out[1].message, out[1]
    assert out[2].error == "AccessDenied" and "U+0661" in out[2].message, out[2]
    assert NO_INFORMATION not in out[2].message, out[2]
    assert out[3].ok, out[3]
