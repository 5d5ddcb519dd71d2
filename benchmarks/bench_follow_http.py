"""100 HTTP followers of one ``inlet web`` process, against followers polling Rucio's list_replicas.

In one run, on the running lake (``inlet lake up`` first, same INLET_* environment):

1. starts one ``inlet web`` process (the lake's PostgreSQL catalogue, its ActiveMQ, its Rucio);
2. phase SSE: ``--followers`` (100) concurrent ``GET /follow`` streams (httpx, async, one
   process) follow one run; the feeder registers ``--files`` files at ``--rate`` per second the
   way the uploader and the listener do: the replica in Rucio (``add_replicas`` on SITE_A_DISK,
   attached to the run dataset), the catalogue rows (``add_files``, ``mark_available``) and the
   ``file-registered`` event, which wakes the web server's one broker subscription. Measured:
   the web process's CPU (s, and % of one core over the phase) and RSS (psutil, sampled), Rucio's
   CPU, and per file the delay from "registered" to its arrival at each follower;
3. phase poll (the baseline): ``--pollers`` threads each call ``list_replicas`` on the run
   dataset every ``--poll`` seconds (the way to follow a dataset with Rucio alone) while the
   feeder registers the same number of files; measured: Rucio's CPU beyond the feeder's own
   (phase 1's Rucio CPU is the feeder's), and the delay to first sight.

Prints per-follower server CPU and median/p90 delays of both, and their ratios.

    .venv/bin/python benchmarks/bench_follow_http.py [--followers 100] [--files 60] [--rate 2]
        [--pollers 4] [--poll 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from inlet.catalog import open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.config import load_settings
from inlet.event_contract import FILE_REGISTERED, envelope, file_event_id, publish_headers
from inlet.lake.lake import Lake
from inlet.lake.ports import free_port
from inlet.lake.usage import lake_pids, pid_usage
from inlet.messaging import Connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.sse_client import aevents

RSE = "SITE_A_DISK"
SCOPE = "cygno.raw"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Feeder:
    """Registers files as the uploader and the listener do; remembers when each was complete."""

    def __init__(self, lake: Lake, catalog: Catalog, run: int) -> None:
        from rucio.client import Client

        self.lake, self.catalog, self.run = lake, catalog, run
        self.dataset = f"run{run:06d}.raw"
        self.client = Client()
        self.client.add_dataset(SCOPE, self.dataset)
        self.written: dict[str, float] = {}
        b = lake.settings.broker
        self.broker = Connection(b, role="inlet")
        self.broker.connect()
        catalog.transaction(
            lambda s: catalog_runs.upsert_run(s, "cygno", run, scope=SCOPE, dataset=self.dataset, run_type="bench")
        )

    def one(self, seq: int) -> str:
        name = f"run{self.run:06d}_bench_{seq:04d}.mid.gz"
        f = {"scope": SCOPE, "name": name, "bytes": 1000, "adler32": "0a0b0c0d"}
        self.client.add_replicas(RSE, [f])
        self.client.attach_dids(SCOPE, self.dataset, [{"scope": SCOPE, "name": name}])

        def work(s: Any) -> None:
            r = catalog_runs.get_run(s, "cygno", self.run)
            catalog_runs.add_files(s, r, [catalog_runs.FileSpec(SCOPE, name, 1000, "0a0b0c0d", None, None)])
            catalog_runs.mark_available(s, SCOPE, name, RSE)

        self.catalog.transaction(work)
        payload = {
            "scope": SCOPE,
            "name": name,
            "did": f"{SCOPE}:{name}",
            "experiment": "cygno",
            "run": self.run,
            "dataset": f"{SCOPE}:{self.dataset}",
            "bytes": 1000,
            "adler32": "0a0b0c0d",
            "rse": RSE,
        }
        event = envelope(FILE_REGISTERED, payload, file_event_id(FILE_REGISTERED, SCOPE, name))
        self.broker.send(self.lake.settings.broker.inlet_topic, json.dumps(event), publish_headers(event))
        self.written[name] = time.monotonic()
        return name

    def feed(self, first: int, n: int, rate: float) -> list[str]:
        names, start = [], time.monotonic()
        for i in range(n):
            names.append(self.one(first + i))
            time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        return names


def sse_followers(
    base: str,
    account: str,
    n: int,
    select: str,
    auth: str,
    expect: int,
    seen: list[dict[str, float]],
    ready: threading.Event,
) -> None:
    """``n`` concurrent streams in one event loop; each records name -> arrival time."""

    async def one(client: httpx.AsyncClient, mine: dict[str, float], opened: list[int]) -> None:
        headers = {"Authorization": f"Basic {auth}", "X-Rucio-Account": account}
        async with client.stream("GET", f"{base}/follow", params={"select": select}, headers=headers) as res:
            assert res.status_code == 200, await res.aread()
            opened.append(1)
            if len(opened) == n:
                ready.set()
            async for ev in aevents(res.aiter_lines()):
                if ev.event == "file":
                    mine[json.loads(ev.data)["name"]] = time.monotonic()
                    if len(mine) >= expect:
                        return

    async def main() -> None:
        limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
        opened: list[int] = []
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as client:
            await asyncio.gather(*(one(client, seen[i], opened) for i in range(n)))

    asyncio.run(main())


def poller(dataset: str, every: float, seen: dict[str, float], stop: threading.Event) -> None:
    from rucio.client import Client

    client = Client()
    while not stop.is_set():
        t0 = time.monotonic()
        for r in client.list_replicas([{"scope": SCOPE, "name": dataset}], rse_expression=RSE):
            if r["name"] not in seen:
                seen[r["name"]] = time.monotonic()
        stop.wait(max(0.0, every - (time.monotonic() - t0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--followers", type=int, default=100)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--rate", type=float, default=2.0, help="files per second")
    ap.add_argument("--pollers", type=int, default=4)
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between two list_replicas of a poller")
    args = ap.parse_args()

    settings = load_settings()
    lake = Lake(settings)
    os.environ.update(lake.rucio_client_env())
    catalog = open_catalog(settings.catalog_url())
    port = free_port()
    env = {**os.environ, **lake.exports(), "INLET_WEB__PORT": str(port), "INLET_WEB__SECRET": uuid.uuid4().hex}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-follow-web-{port}.log"
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "inlet"), "web"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/login", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        web_proc = psutil.Process(web.pid)
        progress("inlet web answers")
        rucio_pid = lake_pids(settings)["rucio"]
        run = random.randint(900_000, 999_999)
        feeder = Feeder(lake, catalog, run)
        r = settings.rucio
        auth = base64.b64encode(f"{r.username}:{r.password}".encode()).decode()
        select = f"{SCOPE}: run_number = {run}"

        def usage() -> tuple[float, float, int]:
            t = web_proc.cpu_times()
            return t.user + t.system, pid_usage([rucio_pid]).cpu, web_proc.memory_info().rss

        rss_idle = web_proc.memory_info().rss
        # -- phase 1: SSE followers -------------------------------------------------------------------
        seen: list[dict[str, float]] = [{} for _ in range(args.followers)]
        ready = threading.Event()
        t = threading.Thread(
            target=sse_followers,
            args=(base, r.account, args.followers, select, auth, args.files, seen, ready),
            daemon=True,
        )
        t.start()
        progress(f"{args.followers} followers connecting")
        assert ready.wait(300), f"followers did not all connect; see {log}"
        rss_peak = [web_proc.memory_info().rss]
        sampling = threading.Event()

        def sample_rss() -> None:
            while not sampling.wait(0.5):
                rss_peak.append(web_proc.memory_info().rss)

        threading.Thread(target=sample_rss, daemon=True).start()
        web0, rucio0, _ = usage()
        w0 = time.monotonic()
        progress("followers connected; feeding (SSE phase)")
        names = feeder.feed(0, args.files, args.rate)
        t.join(timeout=120 + args.files / args.rate)
        wall1 = time.monotonic() - w0
        progress("SSE phase done")
        web1, rucio1, _ = usage()
        sampling.set()
        sse_delays = [arr[nm] - feeder.written[nm] for arr in seen for nm in names if nm in arr]
        missing = sum(1 for arr in seen for nm in names if nm not in arr)
        web_cpu, feeder_rucio_cpu = web1 - web0, rucio1 - rucio0
        load1 = os.getloadavg()
        sse_per = web_cpu / args.followers
        print(f"load average during SSE phase {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; {psutil.cpu_count()} cores")
        print(f"files: {args.files} per phase at {args.rate}/s")
        print(
            f"SSE   {args.followers} followers, one inlet web: CPU {web_cpu:.2f} s over {wall1:.1f} s "
            f"({100 * web_cpu / wall1:.1f} % of a core), {1000 * sse_per / args.files:.2f} ms per follower per file; "
            f"RSS idle {rss_idle / 2**20:.0f} MiB, peak {max(rss_peak) / 2**20:.0f} MiB; "
            f"delay median {statistics.median(sse_delays):.3f} s, p90 {pct(sse_delays, 0.9):.3f} s, "
            f"max {max(sse_delays):.3f} s; missing deliveries: {missing}",
            flush=True,
        )
        print(f"      Rucio CPU while feeding (the feeder's registrations): {feeder_rucio_cpu:.2f} s", flush=True)

        # -- phase 2: list_replicas pollers -------------------------------------------------------------
        polled: list[dict[str, float]] = [{} for _ in range(args.pollers)]
        stop = threading.Event()
        expect2: set[str] = set()
        threads = []
        web2, rucio2, _ = usage()
        w2 = time.monotonic()
        progress("poll phase")
        names2_holder: list[str] = []
        for i in range(args.pollers):
            th = threading.Thread(target=poller, args=(feeder.dataset, args.poll, polled[i], stop), daemon=True)
            threads.append(th)
        # The pollers know which files to wait for once they are fed; they start at once and see
        # the dataset grow (the names of phase 1 are already there: seen at the first poll).
        for th in threads:
            th.start()
        names2_holder = feeder.feed(args.files, args.files, args.rate)
        expect2.update(names2_holder)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(expect2 <= p.keys() for p in polled):
            time.sleep(0.2)
        stop.set()
        for th in threads:
            th.join(timeout=30)
        wall2 = time.monotonic() - w2
        web3, rucio3, _ = usage()
        poll_delays = [p[nm] - feeder.written[nm] for p in polled for nm in names2_holder if nm in p]
        poll_rucio = max(0.0, (rucio3 - rucio2) - feeder_rucio_cpu)  # the same registrations as phase 1
    finally:
        web.terminate()
        web.wait(timeout=60)
        catalog.dispose()

    load = os.getloadavg()
    poll_per = poll_rucio / max(1, args.pollers)
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"POLL  {args.pollers} pollers, list_replicas every {args.poll} s: Rucio CPU beyond the feeder's "
        f"{poll_rucio:.2f} s over {wall2:.1f} s ({100 * poll_rucio / wall2:.1f} % of a core), "
        f"{1000 * poll_per / args.files:.2f} ms per follower per file; "
        f"delay median {statistics.median(poll_delays):.3f} s, p90 {pct(poll_delays, 0.9):.3f} s; "
        f"feeding took {wall2:.1f} s with the pollers, {wall1:.1f} s without"
    )
    print(f"web CPU while the pollers ran (idle SSE side): {web3 - web2:.2f} s")
    sse_rate, poll_rate = sse_per / wall1, poll_per / wall2
    print(
        f"server CPU per follower-second: SSE {1000 * sse_rate:.2f} ms, poll {1000 * poll_rate:.2f} ms; "
        f"ratio poll / SSE {poll_rate / sse_rate:.1f}x (per follower per file: {poll_per / sse_per:.1f}x)"
    )
    print(f"ratio median delay, poll / SSE: {statistics.median(poll_delays) / statistics.median(sse_delays):.1f}x")


if __name__ == "__main__":
    # A SIGTERM (timeout, kill) still stops the web server the benchmark started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
