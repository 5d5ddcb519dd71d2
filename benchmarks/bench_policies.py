"""What does inlet's policy package cost?

1. lfn2pfn: microseconds per path of ``inlet_run`` against Rucio's own ``hash`` algorithm,
   measured in the same process on the same DIDs (no lake needed).
2. Embargo check in the Rucio server: a collaboration account adds rules on datasets of
   --files files. A rule to a public RSE makes the server scan the dataset, its files and its
   parents for ``embargo_until``; a rule to a private RSE does not. The ratio public/private,
   same lake, same datasets, is the price of the check. Needs a running lake (``inlet lake up``;
   the INLET_* variables choose which).

    .venv/bin/python benchmarks/bench_policies.py [--paths 200000] [--files 500] [--datasets 5]
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rucio_inlet.lfn2pfn import run_partitioned

from inlet.config import load_settings
from inlet.lake.lake import Lake

_TIMER = r"""
import json, sys, time
from rucio.client import Client
spec = json.load(sys.stdin)
client = Client()
out = {"private": [], "public": [], "denied_generic": [], "denied_embargo": []}
for ds in spec["datasets"]:
    for kind in ("private", "public"):
        t = time.perf_counter()
        client.add_replication_rule([{"scope": spec["scope"], "name": ds}], 1, spec[kind])
        out[kind].append(time.perf_counter() - t)
for ds in spec["embargoed"]:
    for kind, kw in (("denied_generic", {"account": "root"}), ("denied_embargo", {})):
        t = time.perf_counter()
        try:
            client.add_replication_rule([{"scope": spec["scope"], "name": ds}], 1, spec["public"], **kw)
            raise SystemExit("rule unexpectedly allowed")
        except Exception as exc:
            if type(exc).__name__ != "AccessDenied":
                raise
        out[kind].append(time.perf_counter() - t)
print(json.dumps(out))
"""


def bench_lfn2pfn(n: int) -> None:
    from rucio.rse.translation import RSEDeterministicTranslation

    rucio_hash = RSEDeterministicTranslation._get_one_algorithm("lfn2pfn", "hash")
    dids = [("cygno.raw", f"run{r % 1000000:06d}_pmt_{r % 10000:04d}.mid.gz") for r in range(n)]

    def per_path(fn: object) -> float:
        assert callable(fn)
        t = time.perf_counter()
        for scope, name in dids:
            fn(scope, name, "RSE", {}, {})
        return (time.perf_counter() - t) / n * 1e6

    ours, theirs = per_path(run_partitioned), per_path(rucio_hash)
    print(
        f"lfn2pfn over {n} run files: inlet_run {ours:.2f} us/path, rucio hash {theirs:.2f} us/path, "
        f"ratio {ours / theirs:.2f}x"
    )


def bench_embargo(lake: Lake, files: int, datasets: int) -> None:
    os.environ.update(lake.rucio_client_env())
    from rucio.client import Client

    root = Client()
    sfx = uuid.uuid4().hex[:6]
    account, password = f"pbench{sfx}", "bench-secret"
    public, private = f"POLBENCH-{sfx.upper()}", "SITE_B_DISK"
    root.add_account(account, "USER", f"{account}@localhost")
    root.add_identity(account, account, "USERPASS", f"{account}@localhost", password=password)
    root.add_account_attribute(account, "collaboration", "True")
    root.add_rse(public)
    root.add_protocol(
        public,
        {
            "scheme": "file",
            "hostname": "localhost",
            "port": 0,
            "prefix": f"{lake.paths.data}/rses/{public}/",
            "impl": "rucio.rse.protocols.posix.Default",
            "domains": {"lan": {"read": 1, "write": 1, "delete": 1}, "wan": {"read": 1, "write": 1, "delete": 1}},
        },
    )
    root.add_rse_attribute(public, "public", True)
    for rse in (public, private):
        root.set_local_account_limit(account, rse, 10**15)
    scope = f"user.{account}"
    root.add_scope(account, scope)
    names, embargoed = [], []
    for d in range(2 * datasets):
        ds = f"bench-{sfx}-{d}"
        fs = [{"scope": scope, "name": f"{ds}-{i:05d}.dat", "bytes": 1, "adler32": "00000001"} for i in range(files)]
        for i in range(0, files, 500):
            root.add_replicas("SITE_A_DISK", fs[i : i + 500])
        until = "2020-01-01" if d < datasets else "2099-01-01"
        root.add_dataset(scope, ds, meta={"embargo_until": until})
        for i in range(0, files, 500):
            root.attach_dids(scope, ds, [{"scope": scope, "name": f["name"]} for f in fs[i : i + 500]])
        (names if d < datasets else embargoed).append(ds)
    random.shuffle(names)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(lake.rucio_client_env()["RUCIO_CONFIG"])
        cfg["client"].update(
            {"account": account, "username": account, "password": password, "auth_token_file_path": f"{tmp}/token"}
        )
        path = Path(tmp) / "rucio.cfg"
        with path.open("w") as fh:
            cfg.write(fh)
        res = subprocess.run(
            [sys.executable, "-c", _TIMER],
            input=json.dumps(
                {"scope": scope, "datasets": names, "embargoed": embargoed, "public": public, "private": private}
            ),
            env={**os.environ, "RUCIO_CONFIG": str(path), "TMPDIR": tmp},
            capture_output=True,
            text=True,
            check=True,
        )
    t = {k: statistics.median(v) * 1000 for k, v in json.loads(res.stdout).items()}
    print(
        f"add_rule on a {files}-file dataset ({datasets} datasets, median): private RSE {t['private']:.0f} ms, "
        f"public RSE with embargo scan {t['public']:.0f} ms, ratio {t['public'] / t['private']:.2f}x"
    )
    print(
        f"refusal of a rule on a {files}-file dataset (median): "
        f"generic refusal, no scan {t['denied_generic']:.0f} ms, "
        f"embargo refusal after the scan {t['denied_embargo']:.0f} ms, "
        f"ratio {t['denied_embargo'] / t['denied_generic']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, default=200_000, help="DIDs for the lfn2pfn figure")
    parser.add_argument("--files", type=int, default=500, help="files per dataset for the embargo figure")
    parser.add_argument("--datasets", type=int, default=3, help="datasets (rules of each kind) to time")
    parser.add_argument("--no-lake", action="store_true", help="only the lfn2pfn figure")
    args = parser.parse_args()
    bench_lfn2pfn(args.paths)
    if not args.no_lake:
        lake = Lake(load_settings())
        if not all(r.ok for r in lake.status()):
            sys.exit("the lake is not up: run `inlet lake up` (same INLET_* variables), or pass --no-lake")
        bench_embargo(lake, args.files, args.datasets)


if __name__ == "__main__":
    main()
