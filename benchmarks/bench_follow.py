"""Notification latency of ``inlet follow`` against a polling ``list_replicas`` follower, same run.

Files are attached at a steady pace to a dataset whose rule asks for SITE_B_DISK; the lake's
real daemons copy them there and mark them AVAILABLE, hermes emits ``transfer-done``, and
``inlet listen`` records it in a fresh MariaDB catalogue. Two followers watch the same files:

- the event follower: a real ``inlet follow --json --rse SITE_B_DISK`` process (woken by the
  broker, reading the catalogue); a file counts when its line is read from the pipe;
- the baseline: Rucio's ``list_replicas`` on the dataset every ``--poll`` seconds (what a
  script without inlet does); a file counts when it is first listed AVAILABLE there.

Latency is measured from the moment Rucio marked the replica AVAILABLE: the ``created_at`` of
its ``transfer-done`` message, which the finisher writes in the same transaction. Target:
event follower median <= 0.3 s.

    .venv/bin/python benchmarks/bench_follow.py [--files 30] [--pace 1.0] [--poll 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from inlet.catalog import open_catalog
from inlet.config import load_settings
from inlet.lake.lake import Lake
from inlet.messaging import Connection, Subscription, json_documents

# The flow helpers the real-lake tests use (one way to drive the lake), from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.follow_flow import (
    BIN,
    TARGET_RSE,
    Flow,
    listener_env,
    make_files,
    register,
    start_listener,
    stop,
)

TARGET_MEDIAN_S = 0.3


def fresh_database(lake: Lake) -> tuple[str, Any]:
    import pymysql

    from inlet.lake.services.mariadb import DB_PASSWORD, DB_USER, MariaDB

    server = MariaDB(lake.settings, lake.paths)
    name = f"inlet_bench_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=DB_USER, password=DB_PASSWORD)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop() -> None:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        conn.close()

    return f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{server.port}/{name}", drop


def available_times(lake: Lake, names: set[str], sink: dict[str, float], heard: dict[str, float]) -> Connection:
    """name → when Rucio marked it AVAILABLE on the target (its transfer-done's created_at), and
    name → when that event reached a broker subscriber (``heard``: hermes' share of the latency)."""
    b = lake.settings.broker

    def on_doc(doc: dict[str, Any]) -> None:
        p = doc.get("payload") or {}
        if doc.get("event_type") == "transfer-done" and p.get("name") in names and p.get("dst-rse") == TARGET_RSE:
            at = dt.datetime.fromisoformat(str(doc["created_at"])).replace(tzinfo=dt.UTC)
            sink.setdefault(str(p["name"]), at.timestamp())
            heard.setdefault(str(p["name"]), time.time())

    conn = Connection(
        b,
        role="reader",
        subscriptions=[Subscription(b.rucio_topic, "bench-follow")],
        on_message=json_documents(on_doc, ""),
    )
    conn.connect()
    return conn


def poller(dataset: str, every: float, names: set[str], sink: dict[str, float], stop_ev: threading.Event) -> None:
    from rucio.client import Client

    c = Client()
    while not stop_ev.is_set() and len(sink) < len(names):
        t0 = time.time()
        for rep in c.list_replicas([{"scope": "test", "name": dataset}], rse_expression=TARGET_RSE):
            if rep["name"] in names and TARGET_RSE in (rep.get("rses") or {}):
                sink.setdefault(rep["name"], time.time())
        stop_ev.wait(max(0.0, every - (time.time() - t0)))


def rows_seen(cat: Any, names: set[str], sink: dict[str, float], stop_ev: threading.Event) -> None:
    """name → when its availability row was first seen committed (the listener's share), 20 Hz."""
    from rucio_inlet.catalog_models import FileAvailability, RunFile
    from sqlalchemy import select

    while not stop_ev.is_set() and len(sink) < len(names):
        with cat.session() as s:
            q = (
                select(RunFile.name)
                .join(FileAvailability, FileAvailability.file_id == RunFile.id)
                .where(FileAvailability.rse == TARGET_RSE)
            )
            now = time.time()
            for name in s.scalars(q):
                sink.setdefault(name, now)
        stop_ev.wait(0.05)


def drained(settings: Any, timeout: float = 120.0) -> None:
    """Wait until the listener emptied its queue: events left over from earlier runs are not this
    run's latency."""
    from inlet.broker_stats import queue_depths

    queue = settings.listener.rucio_queue.removeprefix("/queue/")
    deadline = time.time() + timeout
    while time.time() < deadline:
        depth = queue_depths(settings.broker).get(queue, {}).get("size", 0)
        if depth == 0:
            return
        print(f"  waiting for the listener's backlog ({depth} events)")
        time.sleep(2)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--pace", type=float, default=1.0, help="seconds between two attached files")
    ap.add_argument("--poll", type=float, default=1.0, help="the baseline's list_replicas interval (s)")
    args = ap.parse_args()
    settings = load_settings()
    lake = Lake(settings)
    if any(not r.ok for r in lake.status()):
        raise SystemExit("the lake is not healthy: run `inlet lake up` first")
    os.environ.update(lake.exports())  # the baseline's Rucio client
    print(f"lake {settings.lake.state_dir}; load average at start {os.getloadavg()}")

    url, drop = fresh_database(lake)
    cat = open_catalog(url)
    tag = uuid.uuid4().hex[:8]
    run = int(time.time()) % 900_000 + 100_000
    workdir = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    files = make_files(workdir / "data", f"run{run}_{tag}", 0, args.files)
    names = {f.name for f in files}
    register(cat, run, files)
    env = listener_env(lake, url)
    listener = start_listener(env, workdir / "listen.log")
    dataset = f"bench-follow-{tag}"
    flow = Flow(lake, dataset)
    drained(settings)

    available: dict[str, float] = {}
    heard: dict[str, float] = {}
    events = available_times(lake, names, available, heard)
    followed: dict[str, float] = {}
    follower = subprocess.Popen(
        [str(BIN / "inlet"), "follow", f"test: run = {run}", "--rse", TARGET_RSE, "--from-start", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(workdir / "follow.log").open("wb"),
        text=True,
    )

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            followed.setdefault(json.loads(line)["name"], time.time())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    polled: dict[str, float] = {}
    stop_ev = threading.Event()
    baseline = threading.Thread(target=poller, args=(dataset, args.poll, names, polled, stop_ev), daemon=True)
    baseline.start()
    recorded: dict[str, float] = {}
    threading.Thread(target=rows_seen, args=(cat, names, recorded, stop_ev), daemon=True).start()
    time.sleep(3)  # both followers settled (the follower holds its subscription)
    try:
        for f in files:
            t = time.time()
            flow.attach([f])
            time.sleep(max(0.0, args.pace - (time.time() - t)))
        deadline = time.time() + 300
        while time.time() < deadline and (len(followed) < len(names) or len(polled) < len(names)):
            time.sleep(0.2)
    finally:
        stop_ev.set()
        follower.terminate()
        follower.wait(timeout=30)
        flow.close()
        stop(listener)
        events.close()
        cat.dispose()
        drop()
    load_end = os.getloadavg()
    common = sorted(n for n in names if n in available)
    ev = [followed[n] - available[n] for n in common if n in followed]
    po = [polled[n] - available[n] for n in common if n in polled]
    print(f"\n{args.files} files attached every {args.pace:g} s; AVAILABLE known for {len(common)}")
    hb = [heard[n] - available[n] for n in common if n in heard]
    own = [followed[n] - heard[n] for n in common if n in followed and n in heard]
    for label, vals in (
        ("inlet follow (events)", ev),
        ("  of which AVAILABLE->broker", hb),
        ("  of which broker->follower", own),
        ("    broker->row committed", [recorded[n] - heard[n] for n in common if n in recorded and n in heard]),
        ("    row committed->follower", [followed[n] - recorded[n] for n in common if n in recorded and n in followed]),
    ):
        print(f"  {label:<29}n={len(vals):3d}  median {statistics.median(vals):6.3f} s  p90 {pct(vals, 0.9):6.3f} s")
    print(
        f"  list_replicas every {args.poll:g} s    n={len(po):3d}  median {statistics.median(po):6.3f} s  "
        f"p90 {pct(po, 0.9):6.3f} s"
    )
    ratio = statistics.median(ev) / statistics.median(po)
    print(f"  event follower = {ratio:.2f}x the polling follower (median); target median <= {TARGET_MEDIAN_S} s")
    print(f"load average at the end {load_end}")
    if len(ev) < len(common):
        print(f"  WARNING: the event follower missed {len(common) - len(ev)} file(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
