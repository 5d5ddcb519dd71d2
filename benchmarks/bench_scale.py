"""A year's-scale catalogue on MariaDB: generate it, then time what operators run on it.

Generates ``--runs`` runs of ``--files`` files (default 300,000 x 10 = 3 million files, 30 %
of a Virgo year) with their availability rows (every file on TAPE, a third also on a disk
RSE), through the same bulk loader as ``bench_catalog.py``. Then, each figure with the
same SQL on the bare DB-API cursor measured in the same run as its baseline:

- ``inlet select`` for 10 runs (``run between N and N+9``): target median <= 50 ms;
- ``inlet runs``: its first page (``list_runs`` as the CLI calls it: 50 runs in
  (experiment, run_number) order with their per-RSE file counts), a page deep in the
  catalogue (``--after`` a random run) and the first page of ``--state ON_TAPE``:
  target <= 200 ms;
- ``inlet reconcile --run N`` (``Reconciler.run`` for one run): with ``--rucio`` against the
  lake's Rucio (the generated files are unknown to it: the slowest case, every file looked
  up), else only its catalogue reads: target <= 2 s.

    .venv/bin/python benchmarks/bench_scale.py --url mysql+pymysql://.../EMPTY_DB [--runs 300000] [--rucio]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))
from bench_catalog import fill
from rucio_inlet.catalog_models import FileAvailability, Run, RunFile

from inlet.catalog import open_catalog
from inlet.catalog.listing import list_runs
from inlet.select.resolve import select_files


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def reconcile_reads(s: Session, run_number: int) -> int:
    run = s.scalars(select(Run).where(Run.experiment == "kloe", Run.run_number == run_number)).one()
    files = s.scalars(select(RunFile).where(RunFile.run_id == run.id).order_by(RunFile.name)).all()
    avail = s.scalars(select(FileAvailability).where(FileAvailability.file_id.in_([f.id for f in files]))).all()
    return len(files) + len(avail)


def raw(s: Session, sql: str) -> Callable[[], Any]:
    conn = s.connection().connection.dbapi_connection
    assert conn is not None

    def go() -> None:
        cur = conn.cursor()
        cur.execute(sql)
        cur.fetchall()
        cur.close()

    return go


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="an empty MariaDB database")
    ap.add_argument("--runs", type=int, default=300_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--skip-fill", action="store_true", help="the database was filled by an earlier run")
    ap.add_argument("--rucio", action="store_true", help="reconcile against the lake's Rucio, not only the reads")
    args = ap.parse_args()
    if not args.skip_fill:
        took = fill(args.url, args.runs, args.files)
        print(
            f"generated {args.runs:,} runs x {args.files} files = {args.runs * args.files:,} files in {took:.0f} s",
            flush=True,
        )
    cat = open_catalog(args.url)
    rng = random.Random(7)
    with cat.session() as s:
        n_files = s.scalar(select(func.count()).select_from(RunFile))
        print(f"catalogue: {n_files:,} files")
        starts = [rng.randrange(0, args.runs - 10) for _ in range(args.repeat)]
        it = iter(starts * 2)
        ours = median_ms(lambda: select_files(s, f"kloe.raw: run between {(a := next(it))} and {a + 9}"), len(starts))
        a0 = starts[0]
        where = f"WHERE r.run_number BETWEEN {a0} AND {a0 + 9} AND f.scope = 'kloe.raw'"
        sql = "SELECT f.scope, f.name FROM run_files f JOIN runs r ON r.id = f.run_id " + where  # noqa: S608
        base = median_ms(raw(s, sql), args.repeat)
        print(
            f"select 10 runs: median {ours:.1f} ms (target <= 50 ms); bare join on the cursor {base:.2f} ms; "
            f"ratio {ours / base:.1f}"
        )
        page = median_ms(lambda: list_runs(s, limit=50), args.repeat)
        base = median_ms(raw(s, "SELECT * FROM runs ORDER BY experiment, run_number LIMIT 50"), args.repeat)
        print(
            f"runs, first page of 50 with per-RSE counts: median {page:.1f} ms (target <= 200 ms); "
            f"the bare page query {base:.2f} ms; ratio {page / base:.1f}"
        )
        it3 = iter([rng.randrange(0, args.runs) for _ in range(args.repeat)])
        deep = median_ms(lambda: list_runs(s, limit=50, after=("kloe", next(it3))), args.repeat)
        state = median_ms(lambda: list_runs(s, "ON_TAPE", limit=50), args.repeat)
        print(
            f"runs, a page after a random run: median {deep:.1f} ms; first page of --state ON_TAPE: median "
            f"{state:.1f} ms (target <= 200 ms each)"
        )
        one_run = f"SELECT * FROM run_files WHERE run_id = {a0 + 1} ORDER BY name"  # noqa: S608
        base = median_ms(raw(s, one_run), args.repeat)
        it2 = iter([rng.randrange(0, args.runs) for _ in range(args.repeat)])
        if args.rucio:
            from inlet.catalog.reconcile import Reconciler
            from inlet.cli.select_cmd import _rucio_env

            _rucio_env()
            rec_obj = Reconciler(cat)
            rec = median_ms(lambda: rec_obj.run("kloe", run_number=next(it2)), min(args.repeat, 10))
            what = "with the lake's Rucio (none of its files there: the slowest case)"
        else:
            rec = median_ms(lambda: reconcile_reads(s, next(it2)), args.repeat)
            what = "catalogue reads only (--rucio for Rucio's side)"
        print(
            f"reconcile --run N, {what}: median {rec:.1f} ms (target <= 2 s); "
            f"bare files query {base:.2f} ms; ratio {rec / base:.1f}"
        )
    cat.dispose()


if __name__ == "__main__":
    main()
