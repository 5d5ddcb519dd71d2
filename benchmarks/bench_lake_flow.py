"""The running lake at idle and at 1 Hz, polled against woken flow daemons, in the same run.

For each pace of the flow daemons (judge-evaluator, hermes, conveyor), first the lake's
``[lake] flow_wake = false`` (a pass every flow_sleep / [transfers] *_sleep seconds, the
baseline), then ``flow_wake = true`` (woken by PostgreSQL notifications):

1. idle CPU per service over ``--idle`` seconds (user+sys over each service's process tree,
   from /proc: ``inlet.lake.usage``), summed, as a share of one core; target <= 15 %;
2. the 1 Hz flow: one file a second attached to a run dataset whose rule asks for SITE_B_DISK;
   for each, attach -> ``transfer-done`` event on ActiveMQ (evaluator, submitter, copy,
   poller, finisher, hermes): median and p90; target median <= 0.5 s for the whole end to
   end, of which this is the daemons' part;
3. RSS per service and summed; target 1.5 GB.

Restarts only the three flow services of the lake it is pointed at (``inlet lake up`` first,
same INLET_* environment), and leaves them as configured.

    .venv/bin/python benchmarks/bench_lake_flow.py [--idle 60] [--files 30]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from inlet.config import Settings, load_settings
from inlet.lake.lake import Lake
from inlet.lake.usage import cpu_spent, lake_pids, pid_usage, sample
from inlet.messaging import Connection, Subscription, json_documents

FLOW = ("rucio-judge-evaluator", "rucio-hermes", "rucio-conveyor")
TARGET_IDLE = 0.15
TARGET_MEDIAN_S = 0.5
TARGET_RSS_B = 1.5 * 2**30

#: Runs in a child with the lake's RUCIO_CONFIG: registers a file, attaches it, prints the time.
_DRIVER = r"""
import json, os, sys, time, uuid, zlib
from urllib.parse import urlparse
from rucio.client import Client
c = Client()
n, ds = int(sys.argv[1]), sys.argv[2]
c.add_dataset("test", ds)
c.add_replication_rule([{"scope": "test", "name": ds}], 1, "SITE_B_DISK", notify="N")
t_next = time.time()
for i in range(n):
    name = f"{ds}-{i:04d}.dat"
    pfn = c.lfns2pfns("SITE_A_DISK", [f"test:{name}"], operation="write", scheme="file")[f"test:{name}"]
    data = os.urandom(85_000)
    path = urlparse(pfn).path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    c.add_replicas("SITE_A_DISK", [{"scope": "test", "name": name, "bytes": len(data),
                                    "adler32": f"{zlib.adler32(data) & 0xffffffff:08x}"}])
    time.sleep(max(0.0, t_next - time.time()))
    c.attach_dids("test", ds, [{"scope": "test", "name": name}])
    print(json.dumps({"name": name, "attached": time.time()}), flush=True)
    t_next += 1.0
"""


def with_wake(settings: Settings, wake: bool) -> Settings:
    return settings.model_copy(update={"lake": settings.lake.model_copy(update={"flow_wake": wake})})


def restart_flow(settings: Settings) -> None:
    lake = Lake(settings)
    for svc in lake.managed():
        if svc.name in FLOW:
            svc.proc.stop()
    lake.up()
    time.sleep(5)  # their first passes (start-up) are not idle


def idle_cpu(settings: Settings, seconds: float) -> dict[str, float]:
    start = sample(None, {n: [p] for n, p in lake_pids(settings).items()})
    time.sleep(seconds)
    end = sample(None, {n: [p] for n, p in lake_pids(settings).items()})
    return {name: cpu / seconds for name, cpu in cpu_spent(start, end).items()}


def one_hz(lake: Lake, files: int) -> list[float]:
    b = lake.settings.broker
    transfers_done: queue.Queue[tuple[str, float]] = queue.Queue()

    def on_doc(doc: dict[str, Any]) -> None:
        if doc.get("event_type") == "transfer-done":
            transfers_done.put((str(doc["payload"].get("name")), time.time()))

    conn = Connection(
        b,
        role="reader",
        subscriptions=[Subscription(b.rucio_topic, "bench")],
        on_message=json_documents(on_doc, b.rucio_topic),
    )
    conn.connect()  # returns once the broker confirmed the subscription
    ds = f"bench-1hz-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **lake.exports()}
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(files), ds], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    attached = {}
    for line in proc.stdout:
        rec = json.loads(line)
        attached[rec["name"]] = rec["attached"]
    if proc.wait() != 0:
        raise SystemExit("the 1 Hz driver failed")
    done: dict[str, float] = {}
    deadline = time.time() + 300
    while len(done) < len(attached) and time.time() < deadline:
        try:
            name, at = transfers_done.get(timeout=5)
        except queue.Empty:
            continue
        if name in attached:
            done[name] = at
    conn.close()
    if len(done) < len(attached):
        raise SystemExit(f"only {len(done)} of {len(attached)} transfers reported done")
    return sorted(done[n] - attached[n] for n in attached)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured per mode")
    ap.add_argument("--files", type=int, default=30, help="files of the 1 Hz segment per mode")
    args = ap.parse_args()
    base = load_settings()
    if any(not r.ok for r in Lake(base).status()):
        raise SystemExit("the lake is not healthy: run `inlet lake up` first")
    print(f"lake {base.lake.state_dir}; load average {os.getloadavg()}")
    results: dict[str, tuple[dict[str, float], list[float]]] = {}
    try:
        for label, wake in (("polling (before)", False), ("woken (after)", True)):
            settings = with_wake(base, wake)
            restart_flow(settings)
            results[label] = (idle_cpu(settings, args.idle), one_hz(Lake(settings), args.files))
    finally:
        restart_flow(base)
    names = sorted(
        {n for cpu, _ in results.values() for n in cpu}, key=lambda n: -results["polling (before)"][0].get(n, 0)
    )
    print(f"\n1. idle CPU, share of one core over {args.idle:.0f} s")
    print(f"   {'service':<24}" + "".join(f"{label:>18}" for label in results))
    for n in names:
        print(f"   {n:<24}" + "".join(f"{cpu.get(n, 0.0):>17.1%} " for cpu, _ in results.values()))
    totals = {label: sum(cpu.values()) for label, (cpu, _) in results.items()}
    print(f"   {'whole lake':<24}" + "".join(f"{t:>17.1%} " for t in totals.values()))
    after = totals["woken (after)"]
    print(f"   woken = {after / totals['polling (before)']:.2f}x polling; {after / TARGET_IDLE:.2f}x target 15 %")
    print(f"\n2. 1 Hz, attach -> transfer-done event, {args.files} files")
    for label, (_, lat) in results.items():
        p90 = lat[min(len(lat) - 1, round(0.9 * (len(lat) - 1)))]
        print(f"   {label:<18} median {statistics.median(lat):5.2f} s  p90 {p90:5.2f} s")
    med = {label: statistics.median(lat) for label, (_, lat) in results.items()}
    print(
        f"   woken = {med['woken (after)'] / med['polling (before)']:.2f}x polling; "
        f"{med['woken (after)'] / TARGET_MEDIAN_S:.2f}x target 0.5 s"
    )
    rss = {n: pid_usage([p]).rss for n, p in lake_pids(base).items()}
    print("\n3. RSS per service (process trees)")
    for n, r in sorted(rss.items(), key=lambda kv: -kv[1]):
        print(f"   {n:<24} {r / 2**20:7.0f} MB")
    total = sum(rss.values())
    print(f"   {'whole lake':<24} {total / 2**20:7.0f} MB = {total / TARGET_RSS_B:.2f}x target 1.5 GB")
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
