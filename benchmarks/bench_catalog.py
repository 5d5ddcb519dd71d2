"""Run-catalogue figures: insert rate (files/s) and `inlet select` latency over 100,000 runs x 10 files.

Each figure is printed with a baseline measured in the same run:

- insert: the catalogue API as the uploader uses it (``upsert_run`` + ``add_files`` per run,
  one transaction per run, counters and duplicate checks included) against a raw
  ``executemany`` INSERT of the same rows (no checks, no counters): ratio = API / raw.
- select: ``select_files`` (parse + compile + query + replica lookup) against the very SQL it
  generates, run on the bare DB-API cursor: ratio = select / raw (inlet's overhead).

SQLite (file in a temporary directory, WAL) by default; ``--url mysql+pymysql://...`` measures
MariaDB instead (the database must be empty).

    .venv/bin/python benchmarks/bench_catalog.py [--runs 100000] [--files 10] [--api-runs 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rucio_inlet.catalog_models import FileAvailability, Run, RunFile
from sqlalchemy import insert, select

from inlet.catalog import open_catalog
from inlet.catalog.db import Catalog
from inlet.catalog.runs import FileSpec, RunFiles, add_files, add_runs_files, upsert_run
from inlet.select.grammar import parse_selection
from inlet.select.resolve import build_statement, select_files

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STREAMS = ("ksl", "kpm", "rad", "bha")


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _raw_rows(cat: Catalog, experiment: str, scope: str, api_runs: int, files: int) -> list[dict[str, Any]]:
    """The raw baseline's runs, inserted bare, and the file rows its executemany will write."""
    with cat.engine.begin() as conn:
        run_ids = [
            conn.execute(
                insert(Run).values(
                    experiment=experiment,
                    run_number=r,
                    run_type="physics",
                    conditions={},
                    state="RECORDING",
                    state_changed_at=T0,
                    n_files=0,
                    total_bytes=0,
                    created_at=T0,
                    updated_at=T0,
                    version=1,
                )
            ).inserted_primary_key[0]
            for r in range(api_runs)
        ]
    rows = [
        {
            "run_id": rid,
            "scope": scope,
            "name": f"run{r:06d}.{i}",
            "size": 1000 + i,
            "adler32": "0000000a",
            "created_at": T0,
        }
        for r, rid in enumerate(run_ids)
        for i in range(files)
    ]
    return rows


def bench_insert(url: str, api_runs: int, files: int) -> tuple[float, float]:
    cat = open_catalog(url)
    n = api_runs * files
    t = time.perf_counter()
    for r in range(api_runs):
        with cat.session() as s:
            run = upsert_run(s, "bench-api", r, conditions={"stream": STREAMS[r % 4]}, scope="raw", dataset=f"a{r}")
            add_files(s, run, [FileSpec("api", f"run{r:06d}.{i}", 1000 + i, "0000000a") for i in range(files)])
    api_rate = n / (time.perf_counter() - t)

    rows = _raw_rows(cat, "bench-raw", "rawins", api_runs, files)
    t = time.perf_counter()
    for r in range(api_runs):
        with cat.engine.begin() as conn:
            conn.execute(insert(RunFile), rows[r * files : (r + 1) * files])
    raw_rate = n / (time.perf_counter() - t)
    cat.dispose()
    return api_rate, raw_rate


def bench_bulk(url: str, api_runs: int, files: int, per_tx: int) -> tuple[float, float]:
    """Bulk writes: ``add_runs_files`` (runs created, checked, counted) against a raw executemany
    of the same file rows, both ``per_tx`` runs per transaction; files/s for each.

    The two alternate batch by batch, so that a shared machine's load swings hit both alike.
    """
    cat = open_catalog(url)
    rows = _raw_rows(cat, "bench-rawbulk", "rawbulk", api_runs, files)
    bulk_s = raw_s = 0.0
    for start in range(0, api_runs, per_tx):
        batch = [
            RunFiles(
                "bench-bulk",
                r,
                [FileSpec("bulk", f"run{r:06d}.{i}", 1000 + i, "0000000a") for i in range(files)],
                {"conditions": {"stream": STREAMS[r % 4]}, "scope": "raw", "dataset": f"b{r}"},
            )
            for r in range(start, min(api_runs, start + per_tx))
        ]
        t = time.perf_counter()
        with cat.session() as s:
            add_runs_files(s, batch)
        bulk_s += time.perf_counter() - t
        t = time.perf_counter()
        with cat.engine.begin() as conn:
            conn.execute(insert(RunFile), rows[start * files : (start + per_tx) * files])
        raw_s += time.perf_counter() - t
    cat.dispose()
    n = api_runs * files
    return n / bulk_s, n / raw_s


def fill(url: str, runs: int, files: int) -> float:
    """Bulk-load the big catalogue (core executemany in chunks): not a figure, set-up."""
    cat = open_catalog(url)
    t = time.perf_counter()
    rng = random.Random(42)
    chunk = 5000
    file_id = 0
    with cat.engine.begin() as conn:
        first = conn.execute(select(Run.id).order_by(Run.id.desc()).limit(1)).scalar() or 0
        first_file = conn.execute(select(RunFile.id).order_by(RunFile.id.desc()).limit(1)).scalar() or 0
    run_id, file_id = first, first_file
    for start in range(0, runs, chunk):
        run_rows, file_rows, avail_rows = [], [], []
        for r in range(start, min(runs, start + chunk)):
            run_id += 1
            run_rows.append(
                {
                    "id": run_id,
                    "experiment": "kloe",
                    "run_number": r,
                    "run_type": "physics" if r % 10 else "cosmics",
                    "start_time": T0 + dt.timedelta(minutes=10 * r),
                    "conditions": {"stream": STREAMS[r % 4], "beam": 510.0 if r % 10 else 0.0},
                    "scope": "kloe.raw",
                    "dataset": f"run{r:06d}",
                    "state": "ON_TAPE",
                    "state_changed_at": T0,
                    "n_files": files,
                    "total_bytes": files * 1000,
                    "created_at": T0,
                    "updated_at": T0,
                    "version": 1,
                }
            )
            for i in range(files):
                file_id += 1
                file_rows.append(
                    # Names the lake's kloe.raw naming policy accepts (bench_scale --rucio asks Rucio).
                    {
                        "id": file_id,
                        "run_id": run_id,
                        "scope": "kloe.raw",
                        "name": f"run{r:06d}_{STREAMS[r % 4]}_{i:04d}.ybos",
                        "size": 1000,
                        "adler32": f"{rng.getrandbits(32):08x}",
                        "created_at": T0,
                    }
                )
                avail_rows.append({"file_id": file_id, "rse": "TAPE", "available_at": T0})
                if r % 3 == 0:
                    avail_rows.append({"file_id": file_id, "rse": "SITE_A_DISK", "available_at": T0})
        with cat.engine.begin() as conn:
            conn.execute(insert(Run), run_rows)
            conn.execute(insert(RunFile), file_rows)
            conn.execute(insert(FileAvailability), avail_rows)
    cat.dispose()
    return time.perf_counter() - t


QUERIES = [
    "kloe.raw:(run_number=50000) and (stream='ksl')",
    "raw: run between 70000 and 70099 and run_type = physics",
    "*: run_start >= '2026-03-01' and run_start < '2026-03-02' and stream in (ksl, kpm)",
]


def bench_select(url: str, repeat: int) -> list[tuple[str, int, float, float, float]]:
    """Our select (parse, compile, query, rows to objects, replica lookup) against the very SQL
    it generates, run on the bare DB-API cursor: the ratio is inlet's overhead."""
    cat = open_catalog(url)
    out = []
    for expr in QUERIES:
        sql = str(build_statement(parse_selection(expr)).compile(cat.engine, compile_kwargs={"literal_binds": True}))
        with cat.session() as s:
            n = len(select_files(s, expr))
            dbapi = s.connection().connection.dbapi_connection
            assert dbapi is not None

            def ours(s: Any = s, expr: str = expr) -> None:
                select_files(s, expr)

            def raw(conn: Any = dbapi, sql: str = sql) -> None:
                cur = conn.cursor()
                cur.execute(sql)
                cur.fetchall()
                cur.close()

            check = dbapi.cursor()
            check.execute(sql)
            assert len(check.fetchall()) == n, f"the bare SQL disagrees with select_files for {expr}"
            check.close()
            med, p95 = timed(ours, repeat)
            raw_med, _ = timed(raw, repeat)
        out.append((expr, n, med, p95, raw_med))
    cat.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--api-runs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--per-tx", type=int, default=100, help="runs per transaction of the bulk figure")
    ap.add_argument("--url", default="", help="catalogue URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'catalog.db'}"
        backend = url.split(":", 1)[0]
        print(f"backend: {backend}")
        api_rate, raw_rate = bench_insert(url, args.api_runs, args.files)
        print(
            f"insert: catalogue API {api_rate:,.0f} files/s (upsert_run + add_files, one transaction per run of "
            f"{args.files} files); raw executemany {raw_rate:,.0f} files/s; ratio API/raw = {api_rate / raw_rate:.2f}"
        )
        bulk_rate, raw_bulk = bench_bulk(url, args.api_runs, args.files, args.per_tx)
        print(
            f"bulk insert: add_runs_files {bulk_rate:,.0f} files/s ({args.per_tx} runs of {args.files} files per "
            f"transaction, runs created, checked and counted); raw executemany of the same file rows "
            f"{raw_bulk:,.0f} files/s; ratio bulk/raw = {bulk_rate / raw_bulk:.2f} (target >= 0.50)",
            flush=True,
        )
        load = fill(url, args.runs, args.files)
        print(f"filled {args.runs:,} runs x {args.files} files ({args.runs * args.files:,} files) in {load:.1f} s")
        for expr, n, med, p95, raw_med in bench_select(url, args.repeat):
            print(
                f"select {expr!r}: {n} files, median {med * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms; "
                f"same SQL on the bare cursor {raw_med * 1000:.3f} ms; ratio {med / raw_med:.1f}"
            )


if __name__ == "__main__":
    main()
