"""How fast a reconstruction's outputs get into Rucio: the reco worker's bulk path against `UploadClient`.

Both register N output files (default 300 x 20 kB, JSON-sized) on SITE_A_DISK into a dataset of
their own, in the same run, on the running lake:
- baseline: Rucio's ``UploadClient.upload``, one file per call (what the reco worker did);
- inlet: ``inlet.listener.reco_outputs.register_outputs`` (one ``rsemanager.upload`` in bulk
  mode, then ``add_replicas`` and ``attach_dids`` per 500 files).
Prints files/s for each and the ratio. Needs a lake that is up: ``inlet lake up`` with the same
INLET_* environment.

    .venv/bin/python benchmarks/bench_reco_outputs.py [--files 300] [--size-kb 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from inlet.config import load_settings
from inlet.lake.lake import Lake

RSE = "SITE_A_DISK"
SCOPE = "test"


def make_files(root: Path, tag: str, n: int, size: int) -> list[Path]:
    root.mkdir(parents=True)
    out = []
    for i in range(n):
        p = root / f"{tag}.{i:05d}.stats.json"
        p.write_bytes(os.urandom(size))
        out.append(p)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--size-kb", type=int, default=20)
    args = ap.parse_args()
    lake = Lake(load_settings())
    os.environ.update(lake.exports())
    from rucio.client import Client
    from rucio.client.uploadclient import UploadClient

    from inlet.listener.reco_outputs import register_outputs

    client = Client()
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        base = make_files(Path(tmp) / "base", f"bench{tag}b", args.files, args.size_kb * 1024)
        bulk = make_files(Path(tmp) / "bulk", f"bench{tag}i", args.files, args.size_kb * 1024)
        uploader = UploadClient(client)
        t0 = time.perf_counter()
        for p in base:
            item = {"path": str(p), "rse": RSE, "did_scope": SCOPE, "did_name": p.name}
            uploader.upload([{**item, "dataset_scope": SCOPE, "dataset_name": f"bench{tag}b_reco"}])
        t_base = time.perf_counter() - t0
        t0 = time.perf_counter()
        new = register_outputs(client, RSE, SCOPE, f"bench{tag}i_reco", bulk)
        t_bulk = time.perf_counter() - t0
    assert new == args.files, f"{new} of {args.files} registered"
    got = sum(1 for _ in client.list_files(SCOPE, f"bench{tag}i_reco"))
    assert got == args.files, f"{got} of {args.files} in the dataset"
    print(f"{args.files} outputs of {args.size_kb} kB to {RSE}, load {os.getloadavg()[0]:.1f}")
    print(f"  UploadClient, one file per call: {t_base:7.1f} s = {args.files / t_base:6.1f} files/s")
    print(f"  register_outputs (bulk):         {t_bulk:7.1f} s = {args.files / t_bulk:6.1f} files/s")
    print(f"  ratio: {t_base / t_bulk:.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
