"""The lake's RSEs, distances, account limits and scopes: created through Rucio's REST API.

This is the one bootstrap of a data-lake topology: ``inlet lake up`` runs it against the local
lake, and the production deployment (``docker/``) runs the same module against its own
server with ``python -m inlet.lake.topology``. Each step checks what exists first, so it can
be re-run at any time (and finishes an interrupted earlier run).

It runs in a child process with ``RUCIO_CONFIG`` pointing at the client configuration,
because Rucio reads its configuration once, at import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inlet.config import Settings

log = logging.getLogger("inlet.lake.topology")

TB = 10**12

#: Rucio's POSIX protocol confined to the RSE prefix (rucio_inlet.posix): a replica whose path
#: resolves outside the RSE can be neither written nor deleted by upload, download or the reaper.
_POSIX_IMPL = "rucio_inlet.posix.Default"
_ALL_DOMAINS = {
    "lan": {"read": 1, "write": 1, "delete": 1},
    "wan": {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1, "third_party_copy_write": 1},
}


@dataclass
class Protocol:
    scheme: str
    prefix: str
    impl: str
    hostname: str = "localhost"
    port: int = 0
    extended_attributes: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scheme": self.scheme,
            "hostname": self.hostname,
            "port": self.port,
            "prefix": self.prefix,
            "impl": self.impl,
            "domains": _ALL_DOMAINS,
        }
        if self.extended_attributes:
            out["extended_attributes"] = self.extended_attributes
        return out


@dataclass
class RSESpec:
    name: str
    protocols: list[Protocol]
    rse_type: str = "DISK"
    attributes: dict[str, str | bool] = field(default_factory=dict)


@dataclass
class Topology:
    rses: list[RSESpec]
    #: (source, destination) -> distance; applied in both directions.
    distances: dict[tuple[str, str], int]
    account: str = "root"
    account_limit_bytes: int = 100 * TB
    scopes: list[str] = field(default_factory=lambda: ["test", "user.root"])

    def to_json(self) -> str:
        data = asdict(self)
        data["distances"] = [[s, d, n] for (s, d), n in self.distances.items()]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Topology:
        data = json.loads(text)
        rses = [
            RSESpec(
                name=r["name"],
                protocols=[Protocol(**p) for p in r["protocols"]],
                rse_type=r["rse_type"],
                attributes=r["attributes"],
            )
            for r in data["rses"]
        ]
        return cls(
            rses=rses,
            distances={(s, d): n for s, d, n in data["distances"]},
            account=data["account"],
            account_limit_bytes=data["account_limit_bytes"],
            scopes=data["scopes"],
        )


def lake_topology(data_root: str, s3_endpoint: str, s3_bucket: str, settings: Settings | None = None) -> Topology:
    """The four RSEs of the local lake (and of the dress rehearsal)."""
    if settings is None:
        from inlet.config import load_settings

        settings = load_settings()
    from urllib.parse import urlparse

    s3 = urlparse(s3_endpoint)

    def posix(name: str) -> Protocol:
        return Protocol(scheme="file", prefix=f"{data_root}/{name}/", impl=_POSIX_IMPL)

    rses = [
        RSESpec("SITE_A_DISK", [posix("SITE_A_DISK")], attributes={"site": "SITE_A", "daq": True}),
        RSESpec(
            "S3",
            [
                # Path-style S3 URLs under http(s), read and written by inlet's boto3 protocol:
                # the route that lets `rucio upload/download` and gfal2 all reach it (see rucio_inlet.s3).
                Protocol(
                    scheme=s3.scheme or "http",
                    hostname=s3.hostname or "127.0.0.1",
                    port=s3.port or (443 if s3.scheme == "https" else 80),
                    prefix=f"/{s3_bucket}/",
                    impl="rucio_inlet.s3.Default",
                )
            ],
            attributes={"site": "S3", "object_store": True},
        ),
        RSESpec("TAPE", [posix("TAPE")], rse_type="TAPE", attributes={"site": "SITE_A", "tape": True}),
        RSESpec("SITE_B_DISK", [posix("SITE_B_DISK")], attributes={"site": "SITE_B"}),
    ]
    distances = {
        ("SITE_A_DISK", "SITE_B_DISK"): 1,
        ("SITE_A_DISK", "S3"): 1,
        ("SITE_A_DISK", "TAPE"): 1,
        ("SITE_B_DISK", "S3"): 2,
        ("SITE_B_DISK", "TAPE"): 2,
        ("S3", "TAPE"): 2,
    }
    # The reaper deletes an unlocked replica (an expired or deleted rule's) at once only on a greedy
    # RSE; otherwise only when the RSE reports too little free space, which the lake's never do.
    for rse in rses:
        rse.attributes["greedyDeletion"] = True
    topo = Topology(rses=rses, distances=distances)
    if settings.policy.package == "rucio_inlet":
        # Run-partitioned paths (rucio_inlet.lfn2pfn); names outside the runs keep Rucio's hash layout.
        for rse in rses:
            rse.attributes["lfn2pfn_algorithm"] = "inlet_run"
    # One scope per experiment and data tier (cygno.raw, cygno.reco...), from [naming].
    topo.scopes += [s for s in settings.naming.scopes() if s not in topo.scopes]
    return topo


def apply(topology: Topology) -> list[str]:
    """Create what is missing; return a line per change made."""
    from rucio.client import Client
    from rucio.common.exception import Duplicate, RSENotFound, ScopeNotFound

    client = Client()
    done: list[str] = []
    existing = {r["rse"] for r in client.list_rses()}
    for spec in topology.rses:
        if spec.name not in existing:
            client.add_rse(spec.name, rse_type=spec.rse_type, deterministic=True, volatile=False)
            done.append(f"RSE {spec.name} ({spec.rse_type})")
        # get_protocols() raises on an RSE without protocols; get_rse() lists them, possibly none.
        protocols = client.get_rse(spec.name).get("protocols", [])
        have = {(p["scheme"], p["hostname"], p["port"]) for p in protocols}
        wanted = {(p.scheme, p.hostname, p.port): p for p in spec.protocols}
        for old in protocols:
            pkey = (old["scheme"], old["hostname"], old["port"])
            # The topology owns its RSEs' protocols: a replaced one (e.g. an old s3:// entry) goes.
            if pkey not in wanted or old.get("impl") != wanted[pkey].impl:
                client.delete_protocols(spec.name, old["scheme"], hostname=old["hostname"], port=old["port"])
                have.discard(pkey)
                done.append(f"removed protocol {old['scheme']}://{old['hostname']}:{old['port']} on {spec.name}")
        for proto in spec.protocols:
            if (proto.scheme, proto.hostname, proto.port) not in have:
                client.add_protocol(spec.name, proto.params())
                done.append(f"protocol {proto.scheme} on {spec.name}")
        attrs = client.list_rse_attributes(spec.name)
        for key, value in spec.attributes.items():
            if attrs.get(key) != value:
                client.add_rse_attribute(spec.name, key, value)
        client.set_local_account_limit(topology.account, spec.name, topology.account_limit_bytes)
    for (src, dst), dist in topology.distances.items():
        for a, b in ((src, dst), (dst, src)):
            try:
                current = client.get_distance(a, b)
            except RSENotFound:
                current = []
            if not current:
                client.add_distance(a, b, {"distance": dist})
                done.append(f"distance {a} -> {b} = {dist}")
            elif current[0].get("distance") != dist:
                client.update_distance(a, b, {"distance": dist})
    try:
        have_scopes = set(client.list_scopes_for_account(topology.account))
    except ScopeNotFound:  # raised for an account that has none yet
        have_scopes = set()
    for scope in topology.scopes:
        if scope not in have_scopes:
            try:
                client.add_scope(topology.account, scope)
                done.append(f"scope {scope}")
            except Duplicate:
                pass
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the data-lake topology in a Rucio instance.")
    parser.add_argument("topology", help="JSON topology (see Topology.to_json), or '-' for stdin")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.topology == "-" else open(args.topology).read()  # noqa: SIM115
    for line in apply(Topology.from_json(text)):
        print(f"created {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
