"""Replication figures of the gfal2 transfertool on the running lake, each against a raw baseline.

1. Throughput, N x SIZE files (default 10 x 100 MB), DISK->DISK and DISK->S3:
   - the transfertool's copy path alone (``copy_hop``: gfal2 copy + checksum on both sides),
     with the lake's per-link concurrency, against raw ``cp`` / raw boto3 ``upload_file`` run with
     the same concurrency; target >= 70 % of raw;
   - end to end through Rucio: rule created -> rule OK (judge, conveyor, finisher included).
2. Per-file overhead, M small files (default 2,000 x 85 kB) through one dataset rule, against
   the raw copy of the same files: (rule time - raw time) / M, in ms.
3. Rule-to-OK latency of one small file (default 20 rules): median and p99, printed with the
   daemon sleeps in use (their sum is the floor a poll-based conveyor cannot beat).

Files are placed on SITE_A_DISK's storage and registered with ``add_replicas`` (what an
upload does, without paying for ``rucio upload`` in the setup). Needs a lake that is up,
conveyor included: ``inlet lake up`` with the same INLET_* environment.

    .venv/bin/python benchmarks/bench_replication.py [--files 10] [--size-mb 100]
                     [--small 2000] [--small-kb 85] [--latency-runs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from inlet.config import load_settings
from inlet.lake.lake import Lake

SCOPE = "test"


def checksums(data: bytes) -> tuple[str, str]:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}", hashlib.md5(data, usedforsecurity=False).hexdigest()


class Bench:
    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        os.environ.update(lake.exports())
        from rucio.client import Client

        self.client = Client()
        s3 = lake.settings.s3
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=s3.region,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
        )
        self.bucket = s3.bucket
        self.concurrency = lake.settings.transfers.link_concurrency
        self.work = Path(tempfile.mkdtemp(prefix="bench-repl-", dir=lake.paths.tmp))

    # -- registration --------------------------------------------------------------------
    def register(self, sizes: list[int], prefix: str) -> list[dict[str, Any]]:
        """Write files straight onto SITE_A_DISK and register them: returns the file dicts."""
        names = [f"{prefix}-{uuid.uuid4().hex[:12]}.dat" for _ in sizes]
        pfns: dict[str, str] = {}
        for chunk in range(0, len(names), 100):  # a GET: the LFN list travels in the URL
            lfns = [f"{SCOPE}:{n}" for n in names[chunk : chunk + 100]]
            pfns.update(self.client.lfns2pfns("SITE_A_DISK", lfns, operation="write", scheme="file"))
        files = []
        block = os.urandom(max(sizes))
        for i, (name, size) in enumerate(zip(names, sizes, strict=True)):
            # Distinct bytes per file without paying os.urandom for each.
            data = i.to_bytes(8, "big") + block[8:size]
            path = Path(urlparse(pfns[f"{SCOPE}:{name}"]).path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            adler, md5 = checksums(data)
            files.append({"scope": SCOPE, "name": name, "bytes": size, "adler32": adler, "md5": md5, "path": path})
        for chunk in range(0, len(files), 500):
            keys = ("scope", "name", "bytes", "adler32", "md5")
            batch = [{k: f[k] for k in keys} for f in files[chunk : chunk + 500]]
            self.client.add_replicas("SITE_A_DISK", batch)
        return files

    def rule_to_ok(self, files: list[dict[str, Any]], rse: str, timeout: float = 3600) -> float:
        """Seconds from rule creation to rule OK, for a closed dataset of ``files``."""
        ds = f"bench-ds-{uuid.uuid4().hex[:10]}"
        self.client.add_dataset(SCOPE, ds)
        for chunk in range(0, len(files), 500):
            dids = [{"scope": SCOPE, "name": f["name"]} for f in files[chunk : chunk + 500]]
            self.client.attach_dids(SCOPE, ds, dids)
        self.client.close(SCOPE, ds)
        t0 = time.perf_counter()
        rule = self.client.add_replication_rule([{"scope": SCOPE, "name": ds}], 1, rse)[0]
        state = wait_ok(self.client, rule, timeout)
        elapsed = time.perf_counter() - t0
        if state != "OK":
            raise SystemExit(f"rule {rule} to {rse} ended {state}: see the conveyor log")
        return elapsed

    # -- raw baselines ---------------------------------------------------------------------
    def raw_cp(self, files: list[dict[str, Any]]) -> float:
        dst = self.work / f"cp-{uuid.uuid4().hex[:6]}"
        dst.mkdir()
        t0 = time.perf_counter()
        run_parallel([lambda f=f: cp(f["path"], dst / f["name"]) for f in files], self.concurrency)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(dst)
        return elapsed

    def raw_boto3(self, files: list[dict[str, Any]]) -> float:
        t0 = time.perf_counter()
        run_parallel(
            [lambda f=f: self.s3.upload_file(str(f["path"]), self.bucket, f"bench-raw/{f['name']}") for f in files],
            self.concurrency,
        )
        elapsed = time.perf_counter() - t0
        for f in files:
            self.s3.delete_object(Bucket=self.bucket, Key=f"bench-raw/{f['name']}")
        return elapsed

    # -- the transfertool's copy path alone ------------------------------------------------
    def copy_path(self, files: list[dict[str, Any]], to_s3: bool) -> float:
        from rucio.db.sqla.constants import RequestState
        from rucio_inlet.s3 import S3Credentials
        from rucio_inlet.transfertool import CopyEngine, Endpoint, Hop

        s3 = self.lake.settings.s3
        creds = S3Credentials(s3.access_key, s3.secret_key, s3.region, "bench")
        opts = (
            ("S3", "ALTERNATE", True),
            ("S3", "REGION", creds.region),
            ("S3", "ACCESS_KEY", s3.access_key),
            ("S3", "SECRET_KEY", s3.secret_key),
        )
        host = urlparse(s3.endpoint).netloc
        dst_dir = self.work / f"tt-{uuid.uuid4().hex[:6]}"
        hops = []
        for f in files:
            src = Endpoint("SITE_A_DISK", "a", f"file://{f['path']}", f"file://{f['path']}", "ADLER32")
            if to_s3:
                url = f"s3://{host}/{self.bucket}/bench-tt/{f['name']}"
                dst = Endpoint("S3", "s", url, url, "MD5")
            else:
                url = f"file://{dst_dir / f['name']}"
                dst = Endpoint("SITE_B_DISK", "b", url, url, "ADLER32")
            hops.append(Hop(f["name"], f["name"], (src,), dst, f["bytes"], f["adler32"], f["md5"], opts, 3600))
        # The conveyor's own engine: persistent per-link pools whose threads keep their gfal2
        # contexts, warmed up first as they are in a running conveyor.
        engine = CopyEngine(self.concurrency)
        warm = [[replace(h, request_id=f"warm-{i}", size=None, adler32=None, md5=None)] for i, h in enumerate(hops)]
        engine.submit(warm[: self.concurrency])
        engine.wait_idle()
        t0 = time.perf_counter()
        eid = engine.submit([[h] for h in hops])
        engine.wait_idle()
        elapsed = time.perf_counter() - t0
        results = list((engine.status(eid) or {}).values())
        engine.shutdown()
        bad = [r.reason for r in results if r.state != RequestState.DONE]
        if bad:
            raise SystemExit(f"copy failed: {bad[0]}")
        if to_s3:
            for f in files:
                self.s3.delete_object(Bucket=self.bucket, Key=f"bench-tt/{f['name']}")
        else:
            shutil.rmtree(dst_dir)
        return elapsed

    def gfal2_then_checksum(self, files: list[dict[str, Any]]) -> float:
        """The DISK->DISK copy path before issue 14: gfal2 copies, then re-reads the destination
        for its ADLER32 (checksum mode target), with the same concurrency."""
        import gfal2

        dst_dir = self.work / f"gfal2-{uuid.uuid4().hex[:6]}"
        dst_dir.mkdir()
        local = threading.local()

        def one(f: dict[str, Any]) -> None:
            if not hasattr(local, "ctx"):
                local.ctx = gfal2.creat_context()
            params = local.ctx.transfer_parameters()
            params.overwrite = True
            params.set_checksum(gfal2.checksum_mode.target, "ADLER32", f["adler32"])
            local.ctx.filecopy(params, f"file://{f['path']}", f"file://{dst_dir / f['name']}")

        t0 = time.perf_counter()
        run_parallel([lambda f=f: one(f) for f in files], self.concurrency)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(dst_dir)
        return elapsed

    # -- latency ---------------------------------------------------------------------------
    def latency(self, runs: int) -> list[float]:
        out = []
        for _ in range(runs):
            f = self.register([85_000], "bench-lat")[0]
            t0 = time.perf_counter()
            rule = self.client.add_replication_rule([{"scope": SCOPE, "name": f["name"]}], 1, "SITE_B_DISK")[0]
            if wait_ok(self.client, rule, 300, interval=0.05) != "OK":
                raise SystemExit(f"rule {rule} did not reach OK")
            out.append(time.perf_counter() - t0)
        return out


def cp(src: Path, dst: Path) -> None:
    subprocess.run(["cp", str(src), str(dst)], check=True)


def run_parallel(jobs: list[Callable[[], Any]], workers: int) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda j: j(), jobs))


def wait_ok(client: Any, rule_id: str, timeout: float, interval: float = 0.2) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = str(client.get_replication_rule(rule_id)["state"])
        if state in ("OK", "STUCK", "SUSPENDED"):
            return state
        time.sleep(interval)
    return state


def mbps(total_bytes: int, seconds: float) -> str:
    return f"{total_bytes / seconds / 1e6:7.1f} MB/s ({seconds:6.2f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--small-kb", type=int, default=85)
    ap.add_argument("--latency-runs", type=int, default=20)
    args = ap.parse_args()

    lake = Lake(load_settings())
    bad = [r.name for r in lake.status() if not r.ok]
    if bad:
        raise SystemExit(f"the lake is not healthy ({', '.join(bad)}): run `inlet lake up` first")
    bench = Bench(lake)
    t = lake.settings.transfers
    print(
        f"lake {lake.paths.root}; link concurrency {bench.concurrency}; sleeps: submitter {t.submitter_sleep} s, "
        f"poller {t.poller_sleep} s, finisher {t.finisher_sleep} s, other daemons {lake.settings.lake.daemon_sleep} s"
    )
    try:
        if args.files:
            size = args.size_mb * 1_000_000
            files = bench.register([size] * args.files, "bench-big")
            total = size * args.files
            print(f"\n1. throughput, {args.files} x {args.size_mb} MB")
            raw_cp, raw_s3 = bench.raw_cp(files), bench.raw_boto3(files)
            before = bench.gfal2_then_checksum(files)
            tt_disk, tt_s3 = bench.copy_path(files, to_s3=False), bench.copy_path(files, to_s3=True)
            print(f"   raw cp                      {mbps(total, raw_cp)}")
            print(f"   gfal2 copy, then re-read    {mbps(total, before)}  = {raw_cp / before:6.1%} of raw cp (before)")
            print(
                f"   copy path DISK->DISK        {mbps(total, tt_disk)}  = {raw_cp / tt_disk:6.1%} of raw cp "
                f"(target 70 %: {raw_cp / tt_disk / 0.70:4.2f}x target)"
            )
            print(f"   raw boto3 upload_file       {mbps(total, raw_s3)}")
            print(f"   gfal2 copy path DISK->S3    {mbps(total, tt_s3)}  = {raw_s3 / tt_s3:6.1%} of raw boto3")
            rule_disk = bench.rule_to_ok(files, "SITE_B_DISK")
            print(f"   rule to OK      DISK->DISK  {mbps(total, rule_disk)}  = {raw_cp / rule_disk:6.1%} of raw cp")
            rule_s3 = bench.rule_to_ok(files, "S3")
            print(f"   rule to OK      DISK->S3    {mbps(total, rule_s3)}  = {raw_s3 / rule_s3:6.1%} of raw boto3")
        if args.small:
            size = args.small_kb * 1000
            small = bench.register([size] * args.small, "bench-small")
            print(f"\n2. per-file overhead, {args.small} x {args.small_kb} kB, one dataset rule")
            for rse, raw_fn in (("SITE_B_DISK", bench.raw_cp), ("S3", bench.raw_boto3)):
                raw = raw_fn(small)
                ruled = bench.rule_to_ok(small, rse)
                per = (ruled - raw) / args.small * 1000
                print(
                    f"   DISK->{rse:<11} rule {ruled:7.1f} s, raw {raw:6.1f} s: "
                    f"overhead {per:6.1f} ms/file ({ruled / raw:5.1f}x raw)"
                )
        if args.latency_runs:
            lat = sorted(bench.latency(args.latency_runs))
            p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
            floor = t.submitter_sleep + t.poller_sleep + t.finisher_sleep
            print(f"\n3. rule-to-OK latency, one {85} kB file DISK->DISK, {len(lat)} rules")
            print(
                f"   median {statistics.median(lat):5.2f} s, p99 {p99:5.2f} s, min {lat[0]:5.2f} s "
                f"(sum of conveyor sleeps {floor} s: median = {statistics.median(lat) / floor:4.2f}x)"
            )
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
