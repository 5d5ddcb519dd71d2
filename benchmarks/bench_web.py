"""``inlet web`` runs page: p95 with 100,000 runs in the catalogue (target <= 200 ms).

The page is requested through the whole ASGI application (routing, session cookie, the
catalogue reads of :func:`inlet.catalog.listing.list_runs`, Jinja2 rendering) with Starlette's
in-process client, logged in as a collaboration member (every run) and as an outsider (the
embargo filter in SQL; a tenth of the runs are under embargo). Rucio is not involved in this
page; a stand-in answers the login.

Baseline, measured in the same run: the page's two SQL statements (one page of runs, then the
per-RSE file counts of those runs) on the bare DB-API cursor, no ORM, no HTML.
ratio = page / raw SQL.

SQLite (temporary file) by default; ``--url`` measures another catalogue (it must be empty).

    .venv/bin/python benchmarks/bench_web.py [--runs 100000] [--files 10] [--repeat 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_catalog import fill  # the catalogue benchmark's bulk loader (same directory)
from rucio_inlet.catalog_models import Run
from sqlalchemy import update

from inlet.catalog import open_catalog
from inlet.config import load_settings
from inlet.web.app import create_app

TARGET_P95 = 0.200


class _Rucio:
    """Answers the benchmark's two logins; the runs page itself never calls Rucio."""

    def login_userpass(self, account: str, username: str, password: str) -> Any:
        return type("T", (), {"token": "t"})()

    def account_attributes(self, account: str) -> dict[str, str]:
        return {"collaboration": "True"} if account == "member" else {}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    """Median and p95 wall time, and the mean CPU time of this process (all its threads) per call:
    on a loaded host the wall time is mostly waiting for a core; the CPU time is the page's cost."""
    samples = []
    cpu = time.process_time()
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu) / repeat
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], cpu


def raw_page(conn: Any, offset: int, page_size: int) -> None:
    cur = conn.cursor()
    cur.execute(
        "SELECT * FROM runs ORDER BY experiment DESC, run_number DESC LIMIT ? OFFSET ?", (page_size + 1, offset)
    )
    ids = [row[0] for row in cur.fetchall()]
    marks = ",".join("?" * len(ids))
    counts = (
        "SELECT rf.run_id, fa.rse, count(*) FROM run_files rf JOIN file_availability fa ON fa.file_id = rf.id "  # noqa: S608 - placeholders only
        f"WHERE rf.run_id IN ({marks}) GROUP BY rf.run_id, fa.rse"
    )
    cur.execute(counts, ids)
    cur.fetchall()
    cur.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--url", default="", help="catalogue URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    from starlette.testclient import TestClient

    for key in [k for k in os.environ if k.startswith("INLET_")]:
        del os.environ[key]  # the defaults, whatever the shell exports
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'catalog.db'}"
        if not url.startswith("sqlite"):
            raise SystemExit("the raw baseline is written for SQLite's DB-API placeholders: use the default --url")
        load = fill(url, args.runs, args.files)
        cat = open_catalog(url)
        with cat.engine.begin() as conn:  # a tenth of the runs under embargo: the outsider's filter has work
            future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
            conn.execute(update(Run).where(Run.run_number % 10 == 0).values(embargo_until=future))
        print(f"filled {args.runs:,} runs x {args.files} files in {load:.1f} s")
        settings = load_settings(web={"secret": "bench"})
        page_size = settings.web.page_size
        app = create_app(settings, catalog=cat, rucio=_Rucio(), live=False)  # type: ignore[arg-type]
        dbapi = cat.engine.raw_connection()
        ok = True
        with TestClient(app) as client:
            for who in ("member", "outsider"):
                form = client.get("/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                client.post("/login", data={"csrf": form, "account": who, "username": who, "password": "x"})
                for page in (0, args.runs // page_size // 2):  # the newest, and half-way down

                    def get(page: int = page) -> None:
                        res = client.get(f"/runs?page={page}")
                        assert res.status_code == 200 and "run-kloe-" in res.text, res.text[:300]

                    def raw(page: int = page) -> None:
                        raw_page(dbapi, page * page_size, page_size)

                    get()
                    raw()  # warm both
                    med, p95, cpu = timed(get, args.repeat)
                    raw_med, raw_p95, raw_cpu = timed(raw, args.repeat)
                    ok = ok and p95 <= TARGET_P95
                    print(
                        f"runs page {page} as {who} ({page_size} runs, offset {page * page_size:,}): median "
                        f"{med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (target <= {TARGET_P95 * 1000:.0f} ms); "
                        f"raw SQL median {raw_med * 1000:.2f} ms, p95 {raw_p95 * 1000:.2f} ms; "
                        f"ratio page/raw {med / raw_med:.1f}; CPU per request {cpu * 1000:.1f} ms "
                        f"(raw SQL {raw_cpu * 1000:.2f} ms)",
                        flush=True,
                    )
                client.cookies.clear()
        dbapi.close()
        cat.dispose()
        verdict = "met" if ok else "MISSED"
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; p95 target {verdict}")


if __name__ == "__main__":
    main()
