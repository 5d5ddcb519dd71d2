"""Listener figures on the real lake broker and MariaDB: throughput, RSS, event-to-effect latency.

Both consumers apply the same effect to each ``transfer-done`` event: the built-in catalogue
handler records the file's copy on an RSE in the run catalogue (and moves the run once all
its files are there).

- durable: ``inlet listen``'s own loop (in this process): client-individual ack after the
  commit that holds the ledger row, batches of ``[listener] batch_size``;
- naive baseline, same run: an auto-ack subscription whose callback applies the same
  catalogue update in its own transaction, no ledger (what the public consumers do:
  a crash loses or repeats work).

Then, with the durable listener: RSS sampled every 10 % of the events (flat = no leak), and
the event-to-effect latency (publish → committed) at a steady publishing rate.

    source the lake's INLET_* exports, then
    .venv/bin/python benchmarks/bench_listener.py [--events 100000] [--latency-events 3000 --rate 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from typing import Any

import psutil
import pymysql
from rucio_inlet.catalog_models import FileAvailability, ProcessedEvent
from rucio_inlet.catalog_states import RunState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inlet.catalog import open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.catalog.runs import FileSpec
from inlet.config import ListenerRoute, Settings, load_settings
from inlet.lake.services.mariadb import DB_PASSWORD, DB_USER
from inlet.listener.broker import Delivery
from inlet.listener.events import parse_message
from inlet.listener.handlers.base import HandlerContext
from inlet.listener.handlers.catalog import CatalogHandler
from inlet.listener.routing import Router
from inlet.listener.rucio_lookup import RucioClientLookup
from inlet.listener.service import Listener
from inlet.messaging import Connection, Message, Subscription


class AgreeingRucio(RucioClientLookup):
    """Rucio's look before a run moves (once per transition, not per event) is not what is
    measured, and the benchmark's RSEs B0, B1... exist only in the catalogue: Rucio agrees."""

    def available_on(self, rse: str, files: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set(files)


FILES = 1000  # files of the benchmark run; event i records file i % FILES on RSE B<i // FILES>


def transfer_done(tag: str, i: int) -> str:
    """Event ``i``: file ``i % FILES`` on RSE ``B<i // FILES>``, stamped with its publishing time."""
    payload = {
        "scope": "bench",
        "name": f"{tag}_{i % FILES:05d}.dat",
        "dst-rse": f"B{i // FILES}",
        "request-id": f"{tag}-{i}",
        "sent": time.time(),
    }
    return json.dumps({"event_type": "transfer-done", "payload": payload, "created_at": "2026-11-21 00:00:00.000000"})


def preload(settings: Settings, destination: str, events: int, tag: str) -> float:
    with Connection(settings.broker, receipt_timeout=600) as conn:
        t0 = time.perf_counter()
        # One receipt, on the last message: the broker confirms it and, in order, all before it.
        conn.send_all(destination, ((transfer_done(tag, i), {}) for i in range(events)))
        return time.perf_counter() - t0


def make_catalog(settings: Settings, tag: str, rses: int) -> tuple[Catalog, str]:
    port = settings.lake.mariadb_port
    db = f"bench_listener_{tag}"
    conn = pymysql.connect(host="127.0.0.1", port=port, user=DB_USER, password=DB_PASSWORD, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    conn.close()
    cat = open_catalog(f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{port}/{db}")

    def register(s: Session) -> None:
        run = catalog_runs.upsert_run(s, "bench", 1, scope="bench", dataset=f"{tag}_raw")
        catalog_runs.add_files(s, run, [FileSpec("bench", f"{tag}_{i:05d}.dat", 1000) for i in range(FILES)])
        catalog_runs.transition(s, run, RunState.CLOSED)
        catalog_runs.transition(s, run, RunState.UPLOADED)

    cat.transaction(register)
    return cat, db


def drop(settings: Settings, db: str) -> None:
    conn = pymysql.connect(
        host="127.0.0.1", port=settings.lake.mariadb_port, user=DB_USER, password=DB_PASSWORD, autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
    conn.close()


def listener_settings(base: Settings, queue_name: str, rses: int) -> Settings:
    ls = base.listener.model_copy(
        update={
            "inlet_queue": queue_name,
            "rucio_queue": queue_name + ".unused",
            "dlq": queue_name + ".dlq",
            "consumer": "bench",
            "s3_rses": [f"B{k}" for k in range(rses)],
            "routes": [ListenerRoute(handler="catalog", event_types=["transfer-done"])],
            # No periodic Rucio look for stuck rules: it is not part of what is measured.
            "alarms": base.listener.alarms.model_copy(update={"rule_check_interval": 0}),
        }
    )
    return base.model_copy(update={"listener": ls})


class Measured(Listener):
    """The real listener, also noting when each event's effect was committed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latencies: list[float] = []
        self.rss: list[int] = []
        self.sample_every = 0
        #: Only the latency run notes latencies: in a throughput run, decoding every body a
        #: second time and a list of 100,000 floats (~3 MB) would be the benchmark's own cost.
        self.track_latency = False

    def process(self, batch: list[Delivery]) -> None:
        super().process(batch)
        now = time.time()  # after the commit and the acks
        if self.track_latency:
            for d in batch:
                self.latencies.append(now - json.loads(d.body)["payload"]["sent"])
        if self.sample_every and self.handled // self.sample_every > len(self.rss) - 1:
            self.rss.append(psutil.Process().memory_info().rss)


def with_batch(settings: Settings, batch_size: int, prefetch: int) -> Settings:
    ls = settings.listener.model_copy(update={"batch_size": batch_size, "prefetch": prefetch})
    return settings.model_copy(update={"listener": ls})


def durable(settings: Settings, events: int, tag: str, sample: bool) -> tuple[float, Measured, float]:
    rses = -(-events // FILES)
    qname = f"/queue/bench.listener.{tag}"
    s = listener_settings(settings, qname, rses)
    load = preload(s, qname, events, tag)
    cat, db = make_catalog(s, tag, rses)
    lst = Measured(s, cat, Router.from_settings(s.listener), AgreeingRucio())
    if sample:
        lst.sample_every = max(1, events // 10)
        lst.rss.append(psutil.Process().memory_info().rss)
    t0 = time.perf_counter()
    lst.run(max_events=events)
    elapsed = time.perf_counter() - t0
    cat.dispose()
    drop(s, db)
    return events / elapsed, lst, events / load


def naive(settings: Settings, events: int, tag: str) -> float:
    rses = -(-events // FILES)
    qname = f"/queue/bench.naive.{tag}"
    s = listener_settings(settings, qname, rses)
    preload(s, qname, events, tag)
    cat, db = make_catalog(s, tag, rses)
    handler = CatalogHandler(s.listener, {})
    done = threading.Event()
    count = [0]
    lookup = AgreeingRucio()
    import logging

    log = logging.getLogger("bench")

    def apply(message: Message) -> None:
        event = parse_message(message.body, message.headers, 1 << 20)

        def work(session: Session) -> None:
            handler.handle(event, HandlerContext(session, s.listener, lookup, log))

        try:
            cat.transaction(work)
        finally:  # an error (lost, as auto-ack loses it) must not hang the count
            count[0] += 1
        if count[0] >= events:
            done.set()

    sub = Subscription(qname, id="naive", headers={"activemq.prefetchSize": "1000"})
    conn = Connection(s.broker, subscriptions=[sub], on_message=apply)
    t0 = time.perf_counter()
    conn.connect()
    done.wait(timeout=3600)
    elapsed = time.perf_counter() - t0
    conn.close()
    cat.dispose()
    drop(s, db)
    return events / elapsed


def latency(settings: Settings, events: int, rate: float, tag: str) -> list[float]:
    """Publish at a steady rate while the listener runs; latency = commit time - publish time."""
    rses = -(-events // FILES)
    qname = f"/queue/bench.latency.{tag}"
    s = listener_settings(settings, qname, rses)
    cat, db = make_catalog(s, tag, rses)
    lst = Measured(s, cat, Router.from_settings(s.listener), AgreeingRucio())
    lst.track_latency = True
    runner = threading.Thread(target=lst.run, kwargs={"max_events": events})
    runner.start()
    time.sleep(2)  # let it subscribe
    conn = Connection(s.broker)
    conn.connect()
    t0 = time.perf_counter()
    for i in range(events):
        conn.send(qname, transfer_done(tag, i), receipt=False)
        pause = t0 + (i + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    runner.join(timeout=600)
    conn.close()
    cat.dispose()
    drop(s, db)
    return lst.latencies


def catchup(settings: Settings, events: int, listeners: int, tag: str) -> tuple[float, int, int]:
    """A backlog of ``events`` waits in the queue (the outage), then ``listeners`` drain it together.

    Returns the drain time and, read back from the catalogue, the ledger rows and the
    availability rows: both must equal ``events`` (none lost, none applied twice).
    """
    rses = -(-events // FILES)
    qname = f"/queue/bench.catchup.{tag}"
    s = listener_settings(settings, qname, rses)
    preload(s, qname, events, tag)
    cat, db = make_catalog(s, tag, rses)
    workers = [Listener(s, cat, Router.from_settings(s.listener), AgreeingRucio()) for _ in range(listeners)]
    threads = [threading.Thread(target=w.run) for w in workers]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while sum(w.handled for w in workers) < events:
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    for w in workers:
        w.stop()
    for t in threads:
        t.join()
    with cat.session() as session:
        ledger = int(session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)
        avail = int(session.scalar(select(func.count()).select_from(FileAvailability)) or 0)
    cat.dispose()
    drop(s, db)
    return elapsed, ledger, avail


def round_trip_ms(settings: Settings) -> float:
    """Median time of a `SELECT 1` on the catalogue's MariaDB: the unit every figure above is made of."""
    conn = pymysql.connect(
        host="127.0.0.1", port=settings.lake.mariadb_port, user=DB_USER, password=DB_PASSWORD, autocommit=True
    )
    times = []
    with conn.cursor() as cur:
        for _ in range(200):
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            times.append(time.perf_counter() - t0)
    conn.close()
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=5000, help="events for the throughput runs")
    ap.add_argument("--latency-events", type=int, default=3000)
    ap.add_argument("--naive-events", type=int, default=0, help="events for the naive baseline (default: --events)")
    ap.add_argument("--rate", type=float, default=500.0, help="publishing rate (events/s) of the latency run")
    ap.add_argument("--catchup", type=int, default=0, help="only the catch-up figure, with this many queued events")
    ap.add_argument(
        "--sweep", default="", help="only durable throughput for each BATCH:PREFETCH of this list, e.g. 100:200,250:500"
    )
    args = ap.parse_args()
    settings = load_settings()
    tag = uuid.uuid4().hex[:8]
    if args.sweep:
        print(f"durable throughput over {args.events:,} events per setting; host load {psutil.getloadavg()}")
        first = 0.0
        for k, pair in enumerate(args.sweep.split(",")):
            batch_size, prefetch = (int(x) for x in pair.split(":"))
            rate, lst, _ = durable(with_batch(settings, batch_size, prefetch), args.events, f"{tag}s{k}", True)
            first = first or rate
            mb = [r / 2**20 for r in lst.rss]
            print(
                f"  batch_size {batch_size}, prefetch {prefetch}: {rate:,.0f} events/s (ratio to the first "
                f"setting {rate / first:.2f}); RSS growth after warm-up {mb[-1] - mb[1]:+.1f} MB; host load "
                f"{psutil.getloadavg()}",
                flush=True,
            )
        return
    if args.catchup:
        print(
            f"catch-up: {args.catchup:,} transfer-done events queued while no listener runs; host load "
            f"{psutil.getloadavg()}"
        )
        one = 0.0
        for k in (1, 2):
            took, ledger, avail = catchup(settings, args.catchup, k, f"{tag}c{k}")
            one = one or took
            ok = "none lost, none applied twice" if ledger == avail == args.catchup else "MISMATCH"
            print(
                f"  {k} listener(s): drained in {took:.1f} s ({args.catchup / took:,.0f} events/s); ledger rows "
                f"{ledger:,}, availability rows {avail:,}: {ok}; ratio to 1 listener {one / took:.2f}",
                flush=True,
            )
        return

    print(f"events: {args.events} transfer-done, each a catalogue update on MariaDB ({FILES} files per run)")
    print(f"MariaDB round trip (SELECT 1, median): {round_trip_ms(settings):.2f} ms; host load {psutil.getloadavg()}")
    durable_rate, lst, load_rate = durable(settings, args.events, tag + "d", sample=True)
    print(f"preload into the broker: {load_rate:,.0f} events/s")
    print(
        f"durable (client-individual ack after commit, ledger, set-based batches): {durable_rate:,.0f} events/s",
        flush=True,
    )
    naive_rate = naive(settings, args.naive_events or args.events, tag + "n")
    print(
        f"naive (auto-ack, no ledger, a transaction per event, {args.naive_events or args.events} events): "
        f"{naive_rate:,.0f} events/s"
    )
    print(f"ratio durable / naive: {durable_rate / naive_rate:.2f}")
    mb = [r / 2**20 for r in lst.rss]
    print(f"RSS every {args.events // 10} events (MB): {' '.join(f'{m:.0f}' for m in mb)}")
    print(f"RSS growth first→last sample: {mb[-1] - mb[1] if len(mb) > 1 else 0:+.1f} MB")
    lat = sorted(latency(settings, args.latency_events, args.rate, tag + "l"))
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(
        f"event-to-effect latency at {args.rate:.0f} events/s over {len(lat)} events: "
        f"median {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
