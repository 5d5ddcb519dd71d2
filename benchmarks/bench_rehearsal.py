"""The dress rehearsal's figures, on the running lake, against the polling downloader of the same run.

Runs ``inlet rehearse`` (a real Celery worker, the lake's Rucio, conveyor, hermes, ActiveMQ)
and reads its ``report.json``. The baseline measured in the same run is the 2019 rehearsal's
polling downloader (``--poll-interval`` s between dataset listings), which fetches the same
chunks from the same site B; the 2019 figures (upload mean 1.9 s, end to end median 8.2 s) and
the targets of issue #8 are printed beside them.

Profiles:
- ``ten-minutes``: 600 chunks at 1 Hz, real time (targets: 0 lost/corrupted, upload mean
  <= 0.3 s, event-driven end to end median <= 1.0 s and p99 <= 3 s, polling/event median >= 5x);
- ``full``: the whole 4 h, 14,400 chunks, at 10x (0 lost/corrupted; percentiles);
- ``quick``: 60 chunks at 1 Hz.

    .venv/bin/python benchmarks/bench_rehearsal.py [--profile ten-minutes|full|quick]
        [--speedup X] [--poll-interval S] [--report-dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

PROFILES: dict[str, dict[str, float]] = {
    "quick": {"duration": 60, "speedup": 1},
    "ten-minutes": {"duration": 600, "speedup": 1},
    "full": {"duration": 14_400, "speedup": 10},
}
EGO = {"upload mean": 1.9, "end to end median": 8.2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="ten-minutes")
    ap.add_argument("--speedup", type=float, help="Override the profile's speed-up.")
    ap.add_argument("--poll-interval", type=float, default=5.0, help="The polling baseline's period (s).")
    ap.add_argument("--report-dir", type=Path, default=Path("rehearsal-bench"))
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    prof = dict(PROFILES[args.profile])
    if args.speedup:
        prof["speedup"] = args.speedup
    cmd = [
        str(BIN / "inlet"),
        "rehearse",
        "--duration",
        str(prof["duration"]),
        "--speedup",
        str(prof["speedup"]),
        "--poll-interval",
        str(args.poll_interval),
        "--report-dir",
        str(args.report_dir),
    ]
    print("running:", " ".join(cmd), flush=True)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        print(res.stderr[-4000:], file=sys.stderr)
        return 2
    summary = json.loads(lines[-1])
    doc: dict[str, Any] = json.loads((Path(summary["report"]) / "report.json").read_text())
    hops = {h["hop"]: h for h in doc["hops"]}
    c = doc["counts"]
    up, ev, po = hops["upload"], hops["end to end (events)"], hops["end to end (polling)"]
    ratio = po["median"] / ev["median"] if ev["median"] and po["median"] else None
    print(
        f"\nprofile {args.profile}: {c['sent']} chunks, speed-up {prof['speedup']}x, wall {wall:.0f} s, "
        f"load before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    print(f"counts: {json.dumps(c)}")
    print(f"{'hop':<28} {'n':>6} {'mean':>7} {'median':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for h in doc["hops"]:
        if h["n"]:
            print(
                f"{h['hop']:<28} {h['n']:>6} "
                + " ".join(f"{h[k]:>7.3f}" for k in ("mean", "median", "p90", "p99", "max"))
            )
    print("\nagainst the targets (issue #8) and EGO's 2019 figures:")
    print(
        f"  lost {c['lost_events']}/{c['lost_polling']}, corrupted {c['corrupted_events']}/{c['corrupted_polling']}"
        " (events/polling; target 0)"
    )
    print(
        f"  upload mean {up['mean']:.3f} s: {up['mean'] / 0.3:.2f}x the 0.3 s target; "
        f"EGO {EGO['upload mean']} s is {EGO['upload mean'] / up['mean']:.1f}x it"
    )
    print(
        f"  event-driven end to end median {ev['median']:.3f} s ({ev['median'] / 1.0:.2f}x the 1.0 s target), "
        f"p99 {ev['p99']:.3f} s ({ev['p99'] / 3.0:.2f}x the 3 s target); "
        f"EGO's median {EGO['end to end median']} s is {EGO['end to end median'] / ev['median']:.1f}x it"
    )
    if ratio:
        print(f"  polling (every {args.poll_interval} s) / event-driven median: {ratio:.2f}x (target >= 5x)")
    if doc.get("dominant_sleep"):
        d = doc["dominant_sleep"]
        print(f"  the event-driven path waits longest in the {d['daemon']} ({d['mean_s']:.3f} s mean; {d['setting']})")
    print(f"report: {summary['report']}/report.md")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "profile": args.profile,
                    "wall_s": wall,
                    "counts": c,
                    "hops": doc["hops"],
                    "polling_over_events": ratio,
                },
                indent=1,
            )
        )
    return 0 if res.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
