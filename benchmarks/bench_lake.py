"""How fast does `inlet lake up` start, cold and warm, and how much memory does the lake use?

Runs a private lake (own state directory, ports shifted by --offset) so it never disturbs a
lake already running. Prints each figure with its ratio to the foundation issue's target,
and, as a baseline measured in the same run, the time PostgreSQL alone needs (initdb + start),
the one step every cold start must pay.

    .venv/bin/python benchmarks/bench_lake.py [--offset 500] [--runs 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from inlet.config import BrokerSettings, LakeSettings, RedisSettings, RucioSettings, S3Settings, Settings
from inlet.lake.lake import Lake

TARGET_COLD_S = 30.0
TARGET_RSS_B = 1.5 * 2**30
REPO = Path(__file__).resolve().parents[1]


def private_settings(state: Path, offset: int, manage: list[str] | None = None) -> Settings:
    return Settings(
        lake=LakeSettings(
            state_dir=state,
            postgres_port=25432 + offset,
            mariadb_port=23306 + offset,
            manage=manage or LakeSettings().manage,  # type: ignore[arg-type]
        ),
        rucio=RucioSettings(host=f"http://127.0.0.1:{28080 + offset}"),
        broker=BrokerSettings(stomp_port=26613 + offset, openwire_port=26616 + offset),
        s3=S3Settings(endpoint=f"http://127.0.0.1:{29000 + offset}"),
        redis=RedisSettings(url=f"redis://127.0.0.1:{26379 + offset}/0"),
    )


def timed(fn: object) -> float:
    assert callable(fn)
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offset", type=int, default=500, help="port offset of the private lake")
    parser.add_argument("--runs", type=int, default=2, help="cold starts to measure")
    args = parser.parse_args()
    # Under the repo, not /tmp: PostgreSQL runs as 'postgres' and must traverse the path.
    root = Path(tempfile.mkdtemp(prefix=".lake-bench-", dir=REPO))
    root.chmod(0o755)  # mkdtemp makes it 0700
    try:
        pg_only = Lake(private_settings(root / "pg", args.offset, ["postgres"]))
        baseline = timed(pg_only.up)
        pg_only.down(purge=True)

        cold, warm_noop, warm_restart, rss, pss = [], [], [], [], []
        per_service: dict[str, float] = {}
        for i in range(args.runs):
            lake = Lake(private_settings(root / f"lake{i}", args.offset))
            cold.append(timed(lake.up))
            time.sleep(5)  # let the daemons finish their first cycle before measuring memory
            rss.append(lake.total_rss())
            pss.append(sum(svc.proc.pss() for svc in lake.managed()))
            per_service = {svc.name: svc.proc.rss() / 2**20 for svc in lake.managed()}
            warm_noop.append(timed(lake.up))
            lake.down()
            warm_restart.append(timed(lake.up))
            lake.down(purge=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    print(f"baseline: PostgreSQL alone (initdb + start)  {baseline:6.2f} s")
    print(
        f"lake up, cold (empty state)      median {med(cold):6.2f} s  max {max(cold):6.2f} s"
        f"  = {med(cold) / TARGET_COLD_S:.2f} x target 30 s, {med(cold) / baseline:.1f} x baseline"
    )
    print(f"lake up, warm restart (state)    median {med(warm_restart):6.2f} s")
    print(f"lake up, already running (no-op) median {med(warm_noop):6.2f} s")
    print(
        f"RSS of the whole lake            median {med(rss) / 2**20:6.0f} MB"
        f" = {med(rss) / TARGET_RSS_B:.2f} x target 1.5 GB (sum of per-process RSS)"
    )
    print(
        f"PSS of the whole lake            median {med(pss) / 2**20:6.0f} MB"
        f" = {med(pss) / TARGET_RSS_B:.2f} x target (shared pages counted once)"
    )
    for name, mb in sorted(per_service.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} RSS {mb:6.0f} MB")


if __name__ == "__main__":
    main()
