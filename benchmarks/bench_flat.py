"""Flat cost: lake CPU per file and end-to-end latency at growing run-dataset sizes (issue #14).

For each dataset grouping of the run's rule to site A (``NONE``, what ``auto`` chooses for the
rehearsal's stream, against ``DATASET``, what inlet did before), one run is:

1. a short seed rehearsal (``inlet rehearse --keep-run-open``): the uploader creates the run
   dataset with its rules, as in production;
2. for each size: fast bulk registration (``attach_dids`` with site A, 1,000 files per call)
   fills the open dataset up to the size, the evaluator is waited for, then a steady segment
   at 1 Hz (``inlet rehearse --run R --keep-run-open``) measures the lake CPU per delivered file
   per process group and the end-to-end latency.

The ratio that counts is the late median (largest size) over the early one (smallest), within
the same run: target <= 1.5x. With ``--py-spy S`` the Rucio server and the judge-evaluator are
sampled for S seconds during the segment at the largest size (``py-spy record --format raw``),
and their top functions by own time are printed.

    .venv/bin/python benchmarks/bench_flat.py [--sizes 1000,5000,14000] [--segment 90]
        [--groupings NONE,DATASET] [--py-spy 40] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def rehearse(run: int, duration: int, grouping: str, out: Path, poll: float) -> dict[str, Any]:
    cmd = [
        str(BIN / "inlet"),
        "rehearse",
        "--no-lake",
        "--run",
        str(run),
        "--duration",
        str(duration),
        "--keep-run-open",
        "--dataset-grouping",
        grouping,
        "--poll-interval",
        str(poll),
        "--drain-timeout",
        str(max(120.0, 2 * poll)),
        "--report-dir",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"inlet rehearse failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    summary = json.loads(lines[-1])
    doc: dict[str, Any] = json.loads((Path(summary["report"]) / "report.json").read_text())
    return doc


def prefill(client: Any, scope: str, dataset: str, rse: str, have: int, want: int, run: int, stream: str) -> int:
    """Register files at site A and attach them to the dataset, 1,000 per call (no bytes moved:
    the rule to site A is already satisfied, and no per-file rule goes to site B)."""
    from inlet.rehearse.chunks import chunk_name

    rng = random.Random(run)
    gps = 1_000_000_000 + have  # far from the segments' GPS times (the clock's)
    while have < want:
        n = min(1000, want - have)
        files = [
            {
                "scope": scope,
                "name": chunk_name(run, stream, gps + i),
                "bytes": 85_000,
                "adler32": f"{rng.getrandbits(32):08x}",
            }
            for i in range(n)
        ]
        client.attach_dids(scope, dataset, files, rse=rse)
        have += n
        gps += n
    return have


def wait_evaluated(client: Any, scope: str, dataset: str, files: int, timeout: float = 900) -> float:
    """Wait until the judge-evaluator has placed the rule to site A on every file attached."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        rules = [r for r in client.list_did_rules(scope, dataset) if r["rse_expression"].startswith("SITE_A")]
        if rules and all(r["locks_ok_cnt"] >= files for r in rules):
            return time.monotonic() - t0
        time.sleep(2)
    raise SystemExit(f"the evaluator did not place {files} locks within {timeout:.0f} s")


def pids_of(name: str) -> list[int]:
    import psutil

    from inlet.config import load_settings
    from inlet.lake.usage import lake_pids

    pid = lake_pids(load_settings()).get(name)
    if pid is None:
        return []
    p = psutil.Process(pid)
    return [p.pid, *(c.pid for c in p.children(recursive=True))]


def py_spy(pids: list[int], seconds: int, out: Path) -> list[subprocess.Popen[bytes]]:
    exe = shutil.which("py-spy") or str(BIN / "py-spy")
    procs = []
    for pid in pids:
        procs.append(
            subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "25",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out / f"{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return procs


def sample_stacks(targets: dict[str, list[int]], delay: float, seconds: int, out: Path) -> None:
    """py-spy on each role's processes for ``seconds``, ``delay`` s into the segment (its steady part)."""
    time.sleep(delay)
    procs = []
    for role, pids in targets.items():
        (out / role).mkdir(parents=True, exist_ok=True)
        procs += py_spy(pids, seconds, out / role)
    for p in procs:
        p.wait()


def _frame(frame: str) -> str:
    """``function (path/to/module.py:123)`` as ``function (module.py)``."""
    func, _, where = frame.partition(" (")
    return f"{func} ({where.split(':')[0].rsplit('/', 1)[-1]})"


#: Rucio's logic (not its session wrappers or helpers): the frames a sample is charged to.
RUCIO_LOGIC = ("rucio/core/", "rucio/daemons/", "rucio/api/", "rucio/gateway/", "rucio/web/rest/", "inlet/")


def top_functions(files: list[Path], n: int = 12, inside: tuple[str, ...] = RUCIO_LOGIC) -> list[tuple[str, float]]:
    """Share of samples per function from py-spy's collapsed stacks, charged to the innermost
    frame in ``inside`` (which of Rucio's operations the time is for, whether it is spent in
    Rucio itself or in SQLAlchemy and the driver below it)."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for f in files:
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            mine = [fr for fr in frames if any(part in fr for part in inside)]
            own[_frame(mine[-1] if mine else frames[-1])] += int(count)
            total += int(count)
    return [(k, v / total) for k, v in own.most_common(n)] if total else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,14000", help="Run-dataset sizes (files) to measure at.")
    ap.add_argument("--segment", type=int, default=90, help="Chunks per steady segment (at 1 Hz).")
    ap.add_argument("--groupings", default="NONE,DATASET", help="Dataset groupings to compare (first: inlet's).")
    ap.add_argument("--poll-interval", type=float, default=60.0, help="The polling baseline's period in segments.")
    ap.add_argument("--py-spy", type=int, default=0, help="Seconds to sample server and evaluator at the largest size.")
    ap.add_argument("--report-dir", type=Path, default=Path("flat-bench"))
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    from inlet.config import load_settings
    from inlet.uploader import app_runtime

    settings = load_settings()
    app_runtime.settings()  # RUCIO_CONFIG before Rucio is imported
    from rucio.client import Client

    client = Client()
    scope = f"{settings.rehearse.experiment}.raw"
    rse = settings.uploader.first_rse
    results: dict[str, list[dict[str, Any]]] = {}
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for gi, grouping in enumerate(args.groupings.split(",")):
        run = int(time.time()) % 900_000 + 100_000 + gi
        dataset = f"run{run:06d}.raw"
        out = args.report_dir / f"{grouping}-{run}"
        print(f"\n== grouping {grouping}: run {run}, seed segment", flush=True)
        seed = rehearse(run, 10, grouping, out, args.poll_interval)
        have = seed["counts"]["uploaded"]
        rows: list[dict[str, Any]] = []
        for size in sizes:
            t0 = time.monotonic()
            have = prefill(client, scope, dataset, rse, have, size, run, settings.rehearse.stream)
            waited = wait_evaluated(client, scope, dataset, have)
            print(f"   filled to {have} files in {time.monotonic() - t0:.0f} s (evaluator {waited:.0f} s)", flush=True)
            spy_dir = out / f"py-spy-{size}"
            spy: threading.Thread | None = None
            if args.py_spy and size == sizes[-1]:
                targets = {"server": pids_of("rucio"), "evaluator": pids_of("rucio-judge-evaluator")}
                spy = threading.Thread(target=sample_stacks, args=(targets, args.segment * 0.2, args.py_spy, spy_dir))
                spy.start()
            doc = rehearse(run, args.segment, grouping, out, args.poll_interval)
            have += doc["counts"]["uploaded"]
            if spy is not None:
                spy.join()
            hops = {h["hop"]: h for h in doc["hops"]}
            ev = hops["end to end (events)"]
            cpu = doc["meta"].get("cpu") or {}
            row = {
                "size": size,
                "files_after": have,
                "e2e_median": ev["median"],
                "e2e_p99": ev["p99"],
                "upload_median": hops["upload"]["median"],
                "cpu_ms_per_file": 1000 * (cpu.get("total_cpu_s_per_file") or float("nan")),
                "cpu_ms_per_file_by_group": {g: 1000 * v for g, v in (cpu.get("cpu_s_per_file") or {}).items() if v},
                "lost": doc["counts"]["lost_events"],
                "load": os.getloadavg()[0],
            }
            if spy is not None:
                row["py_spy"] = {
                    role: top_functions(sorted((spy_dir / role).glob("*.txt"))) for role in ("server", "evaluator")
                }
            rows.append(row)
            by = row["cpu_ms_per_file_by_group"]
            print(
                f"   at {size:>6} files: e2e median {ev['median']:.3f} s, p99 {ev['p99']:.3f} s, CPU "
                f"{row['cpu_ms_per_file']:.0f} ms/file (server {by.get('rucio server', 0):.0f}, evaluator "
                f"{by.get('judge-evaluator', 0):.0f}, postgres {by.get('postgresql', 0):.0f}), load {row['load']:.1f}",
                flush=True,
            )
            for role, top in row.get("py_spy", {}).items():
                print(f"   py-spy {role}, own time:")
                for fn, share in top:
                    print(f"     {100 * share:5.1f} %  {fn}")
        results[grouping] = rows
    print("\ngrouping   size   e2e median   p99   CPU ms/file   late/early median")
    for grouping, rows in results.items():
        early = rows[0]["e2e_median"]
        for r in rows:
            ratio = r["e2e_median"] / early if early else float("nan")
            print(
                f"{grouping:<9} {r['size']:>6} {r['e2e_median']:>10.3f} {r['e2e_p99']:>6.2f} "
                f"{r['cpu_ms_per_file']:>12.0f} {ratio:>10.2f}x"
            )
        late = rows[-1]["e2e_median"] / early if early else float("nan")
        print(f"{grouping}: late/early median {late:.2f}x (target <= 1.5x)")
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "segment": args.segment, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
