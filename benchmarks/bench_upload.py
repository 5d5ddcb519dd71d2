"""Uploader figures against the running lake, each with its baseline measured in the same run.

- throughput: files/s registered by inlet's uploader (a real Celery worker, batches of
  ``--batch`` files, run dataset with the raw stream's three rules) against
  (a) a ``rucio upload`` CLI loop and (b) Rucio's ``UploadClient`` called per file in-process,
  on 85 kB files of the same size. ``rucio upload`` exits 0 even when it fails, so each baseline
  file is counted only if Rucio then lists its replica.
- latency at 1 Hz pacing: file closed (its mtime) -> registered and AVAILABLE on the first RSE
  (the catalogue's registered_at), one file per second: mean, median, p99. Once with the files
  queued by the API right after closing, once found by ``inlet watch`` (the DAQ writes the file,
  then its sidecar), which adds the watcher's detection delay.

The baselines are slow (seconds per file here), so they run on fewer files (``--cli-files``,
``--client-files``) and are compared as rates.

    .venv/bin/python benchmarks/bench_upload.py [--files 2000] [--batch 100] [--cli-files 20]
        [--client-files 50] [--latency-files 20] [--workers 1] [--only latency] [--watch-interval S]
"""

from __future__ import annotations

import argparse
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
from typing import Any

from inlet.config import load_settings
from inlet.lake.lake import Lake

BIN = Path(sys.executable).parent
SIZE = 85_000


def make_files(root: Path, names: list[str]) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        p = root / n
        p.write_bytes(os.urandom(SIZE))
        out.append(p)
    return out


def replicas_present(scope: str, names: list[str]) -> int:
    from rucio.client import Client

    c = Client()
    found = 0
    for i in range(0, len(names), 200):
        dids = [{"scope": scope, "name": n} for n in names[i : i + 200]]
        found += sum(1 for r in c.list_replicas(dids) if r["rses"])
    return found


def bench_cli(root: Path, n: int, env: dict[str, str]) -> float:
    tag = uuid.uuid4().hex[:8]
    files = make_files(root / "cli", [f"bench-cli-{tag}-{i}.dat" for i in range(n)])
    t = time.perf_counter()
    for f in files:
        subprocess.run(
            [str(BIN / "rucio"), "upload", "--rse", "SITE_A_DISK", "--scope", "test", str(f)],
            env=env,
            capture_output=True,
            check=False,
            timeout=300,
        )
    elapsed = time.perf_counter() - t
    ok = replicas_present("test", [f.name for f in files])
    return ok / elapsed


def bench_client(root: Path, n: int) -> float:
    from rucio.client.uploadclient import UploadClient

    tag = uuid.uuid4().hex[:8]
    files = make_files(root / "client", [f"bench-client-{tag}-{i}.dat" for i in range(n)])
    up = UploadClient()
    t = time.perf_counter()
    for f in files:
        up.upload([{"path": str(f), "rse": "SITE_A_DISK", "did_scope": "test"}])
    elapsed = time.perf_counter() - t
    return replicas_present("test", [f.name for f in files]) / elapsed


def start_workers(env: dict[str, str], n: int, logdir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        log = logdir / f"worker{i}.log"
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "inlet.uploader",
                    "worker",
                    "-c",
                    "1",
                    "-n",
                    f"bench{i}-{uuid.uuid4().hex[:4]}@%h",
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def warm_up(run: int, root: Path) -> None:
    """One file first: worker imports, Rucio token, run dataset and its rules, outside the timing."""
    from inlet.uploader import api

    (f,) = make_files(root / "warm", [f"run{run:06d}_pmt_9999.mid.gz"])
    out = api.upload([f], run, "raw", timeout=600)
    assert out.ok and out.registered, out


def bench_inlet(root: Path, n: int, batch: int, run: int) -> float:
    from inlet.uploader import api

    files = make_files(root / "inlet", [f"run{run:06d}_pmt_{i:04d}.mid.gz" for i in range(n)])
    t = time.perf_counter()
    out = api.upload(files, run, "raw", batch_size=batch, timeout=3600)
    elapsed = time.perf_counter() - t
    assert out.ok and len(out.registered) == n, out
    return n / elapsed


def bench_latency(root: Path, n: int, run: int, catalog_url: str) -> list[float]:
    from rucio_inlet.catalog_models import RunFile

    from inlet.catalog import open_catalog
    from inlet.uploader import api

    results = []
    names = []
    for i in range(n):
        (f,) = make_files(root / "latency", [f"run{run:06d}_pmt_{i:04d}.mid.gz"])  # closed now
        names.append(f.name)
        items = api.check_files([f], run, "raw")
        results += api.submit(items, run, "raw", batch_size=1)[0]
        time.sleep(max(0.0, 1.0 - (time.time() - f.stat().st_mtime)))
    api.wait(results, timeout=600)
    cat = open_catalog(catalog_url)
    with cat.session() as s:
        rows = s.query(RunFile).filter(RunFile.scope == "cygno.raw", RunFile.name.in_(names)).all()
        lat = [(r.registered_at - r.closed_at).total_seconds() for r in rows if r.registered_at and r.closed_at]
    cat.dispose()
    return lat


def bench_watch_latency(
    root: Path, n: int, run: int, catalog_url: str, env: dict[str, str], interval: float | None
) -> list[float]:
    from rucio_inlet.catalog_models import RunFile

    from inlet.catalog import open_catalog

    daq = root / "watched"
    daq.mkdir()
    log = root / "watch.log"
    argv = [str(BIN / "inlet"), "watch", str(daq)] + (["--interval", str(interval)] if interval else [])
    watcher = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    names = [f"run{run:06d}_pmt_{i:04d}.mid.gz" for i in range(n)]
    cat = open_catalog(catalog_url)

    def rows() -> list[RunFile]:
        with cat.session() as s:
            return s.query(RunFile).filter(RunFile.scope == "cygno.raw", RunFile.name.in_(names)).all()

    try:
        time.sleep(3.0)  # the watcher's start-up (imports), outside the timing
        for name in names:
            (f,) = make_files(daq, [name])  # closed now; the DAQ then writes the sidecar
            (daq / f"{name}.json").write_text(json.dumps({"run": run}))
            time.sleep(max(0.0, 1.0 - (time.time() - f.stat().st_mtime)))
        deadline = time.monotonic() + 600
        while len(done := rows()) < n and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        watcher.terminate()
        watcher.wait(60)
    lat = [(r.registered_at - r.closed_at).total_seconds() for r in done if r.registered_at and r.closed_at]
    cat.dispose()
    return lat


def summary(lat: list[float]) -> dict[str, Any]:
    lat = sorted(lat)
    return {
        "n": len(lat),
        "mean": round(statistics.mean(lat), 3),
        "median": round(statistics.median(lat), 3),
        "p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--cli-files", type=int, default=20)
    ap.add_argument("--client-files", type=int, default=50)
    ap.add_argument("--latency-files", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--watch-interval", type=float, help="inlet watch --interval (default: its own).")
    ap.add_argument("--only", choices=["latency"], help="Measure only this part (the throughput runs take minutes).")
    args = ap.parse_args()

    settings = load_settings()
    lake = Lake(settings)
    rucio_env = lake.rucio_client_env()
    os.environ.update(rucio_env)  # before the first rucio import in this process
    os.makedirs(os.environ.get("TMPDIR", "/tmp"), exist_ok=True)
    queue = f"inlet.upload.bench-{uuid.uuid4().hex[:8]}"
    os.environ["INLET_UPLOADER__QUEUE"] = queue
    env = {**os.environ}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=lake.paths.tmp) as tmp:
        root = Path(tmp)
        os.environ["INLET_UPLOADER__STATE_DIR"] = str(root / "state")
        env = {**os.environ}
        procs = start_workers(env, args.workers, root)
        try:
            run = random.randint(100_000, 999_999)
            warm_up(run, root)
            inlet_rate = cli_rate = client_rate = 0.0
            if args.only is None:
                inlet_rate = bench_inlet(root, args.files, args.batch, run)
                cli_rate = bench_cli(root, args.cli_files, env)
                client_rate = bench_client(root, args.client_files)
            lat = bench_latency(root, args.latency_files, random.randint(100_000, 999_999), settings.catalog_url())
            watch_lat = bench_watch_latency(
                root,
                args.latency_files,
                random.randint(100_000, 999_999),
                settings.catalog_url(),
                env,
                args.watch_interval,
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
    latency = {"api": summary(lat), "watch": summary(watch_lat)}
    if args.only == "latency":
        print(json.dumps({"workers": args.workers, "latency_1hz_s": latency}, indent=2))
        return 0
    figures = {
        "files": args.files,
        "file_bytes": SIZE,
        "batch": args.batch,
        "workers": args.workers,
        "inlet_files_per_s": round(inlet_rate, 2),
        "rucio_upload_cli_files_per_s": round(cli_rate, 3),
        "upload_client_files_per_s": round(client_rate, 3),
        "ratio_vs_cli": round(inlet_rate / cli_rate, 1) if cli_rate else None,
        "ratio_vs_upload_client": round(inlet_rate / client_rate, 1) if client_rate else None,
        "latency_1hz_s": latency,
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
