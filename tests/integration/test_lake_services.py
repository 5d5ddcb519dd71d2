"""The lake's own services added for a quiet, fast and cached Rucio: memcached (Rucio's cache),
flow daemons woken by the work itself, the slow daemons in one process, and the optional
uploader worker and listener."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import psycopg

from inlet.lake.lake import Lake
from inlet.lake.services.memcached import Memcached, memcached_stats
from inlet.lake.services.postgres import Postgres
from inlet.plugins.flow_daemons import WAKE_TRIGGERS, libpq_dsn
from tests.integration.conftest import daq_files, inlet, python_child, wait_for

_LOOKUPS = r"""
from rucio.client import Client
c = Client()
for _ in range(5):
    c.get_rse("SITE_A_DISK")
    list(c.list_rses("SITE_A_DISK|SITE_B_DISK"))
"""


def test_memcached_answers_and_the_rucio_server_caches_in_it(lake: Lake) -> None:
    mc = Memcached(lake.settings, lake.paths)
    row = next(r for r in lake.status() if r.name == "memcached")
    assert row.state == "up", row.log_tail
    assert f"url = {mc.url}" in lake.paths.rucio_cfg.read_text()
    before = memcached_stats(mc.port)
    subprocess.run([sys.executable, "-c", _LOOKUPS], env={**os.environ, **lake.exports()}, check=True, timeout=120)
    after = memcached_stats(mc.port)
    # Rucio's server stored lookups in memcached, and read them back from it.
    assert int(after["cmd_set"]) + int(after["get_hits"]) > int(before["cmd_set"]) + int(before["get_hits"])
    assert int(after["curr_items"]) > 0


_PFN = r"""
import json
from rucio.client import Client
print(json.dumps(Client().lfns2pfns("SITE_A_DISK", ["cygno.raw:run000123.mid.gz"], operation="write")))
"""


def test_creating_the_topology_flushes_rucios_cache_so_the_rse_attributes_apply(lake: Lake) -> None:
    # Rucio caches an RSE's protocols with its attributes and does not invalidate that entry when
    # an attribute is set: the topology (re)applied behind a warm cache must be followed by a flush,
    # or the server answers with the hash layout instead of the RSE's lfn2pfn_algorithm.
    mc = Memcached(lake.settings, lake.paths)
    env = {**os.environ, **lake.exports()}
    python_child(env, _PFN)  # the RSE's protocols are now in Rucio's cache
    for marker in lake.paths.data.glob(".topology-*"):
        marker.unlink()  # as on a cold start: the topology is applied again (idempotent)
    flushes = int(memcached_stats(mc.port)["cmd_flush"])
    lake.bootstrap_topology()
    assert int(memcached_stats(mc.port)["cmd_flush"]) == flushes + 1
    pfn = json.loads(python_child(env, _PFN))["cygno.raw:run000123.mid.gz"]
    assert pfn.endswith("/SITE_A_DISK/cygno.raw/0000/000123/run000123.mid.gz"), pfn


#: A file on SITE_A_DISK attached to a dataset whose rule asks for SITE_B_DISK: the attach is
#: the evaluator's work, the request the conveyor's, the transfer-done event hermes'.
_ATTACH_UNDER_A_RULE = r"""
import os, sys, tempfile, uuid
from rucio.client import Client
from rucio.client.uploadclient import UploadClient
c = Client()
tag = uuid.uuid4().hex[:10]
path = os.path.join(tempfile.mkdtemp(), f"wake-{tag}.dat")
with open(path, "wb") as fh:
    fh.write(os.urandom(4096))
UploadClient(c).upload([{"path": path, "rse": "SITE_A_DISK", "did_scope": "test"}])
c.add_dataset("test", f"wake-ds-{tag}")
rule = c.add_replication_rule([{"scope": "test", "name": f"wake-ds-{tag}"}], 1, "SITE_B_DISK", notify="Y")[0]
c.attach_dids("test", f"wake-ds-{tag}", [{"scope": "test", "name": f"wake-{tag}.dat"}])
print(rule)
"""

_RULE_STATE = "from rucio.client import Client; import sys; print(Client().get_replication_rule(sys.argv[1])['state'])"


def _flow_listeners(lake: Lake) -> set[str]:
    """The wake-up channels some connection to Rucio's database listens on."""
    with psycopg.connect(libpq_dsn(Postgres(lake.settings, lake.paths).url), autocommit=True) as conn:
        rows = conn.execute("SELECT query FROM pg_stat_activity WHERE query LIKE 'LISTEN inlet_wake_%'").fetchall()
    return {part.strip().removeprefix("LISTEN ") for (q,) in rows for part in str(q).split(";")}


def test_the_flow_daemons_listen_and_rucios_work_notifies_each_of_them(lake: Lake) -> None:
    assert lake.settings.lake.flow_wake
    # Every channel has a daemon waiting on it (the lake installed the triggers before starting them).
    assert wait_for("the flow daemons to LISTEN", lambda: _flow_listeners(lake) >= set(WAKE_TRIGGERS), timeout=60)
    env = {**os.environ, **lake.exports()}
    heard: set[str] = set()
    with psycopg.connect(libpq_dsn(Postgres(lake.settings, lake.paths).url), autocommit=True) as conn:
        for channel in WAKE_TRIGGERS:
            conn.execute(f"LISTEN {channel}")
        rule = python_child(env, _ATTACH_UNDER_A_RULE).strip()

        def all_heard() -> bool:
            heard.update(n.channel for n in conn.notifies(timeout=1.0))
            return heard >= set(WAKE_TRIGGERS)

        # The bound only stops a hang: each notification comes when Rucio commits that work.
        wait_for(f"notifications on every wake-up channel (heard {heard})", all_heard, timeout=180, every=0)
    # ... and the woken daemons carried the rule through (with no pass but the woken ones due
    # within [lake] flow_idle of an idle lake, the rule still ends OK).
    wait_for("the rule to be OK", lambda: python_child(env, _RULE_STATE, rule).strip() == "OK", timeout=180)


def test_the_lakes_own_uploader_worker_takes_an_inlet_upload(lake: Lake, tmp_path: Path) -> None:
    row = next(r for r in lake.status() if r.name == "uploader")
    assert row.state == "up", row.log_tail
    assert row.log_path.startswith(str(lake.paths.logs))
    run = random.randint(100_000, 999_999)
    (path,) = daq_files(tmp_path, run, 1, size=2048)
    # The README's tour: nothing but the lake's environment, no worker started by hand.
    res = inlet({**os.environ, **lake.exports()}, "upload", str(path), "--run", str(run), "--stream", "raw")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[0])["registered"] == 1
    assert "lake-uploader@" in Path(row.log_path).read_text()


def test_a_managed_listener_starts_reports_health_and_stops_by_pid(lake: Lake) -> None:
    # Not managed by default (it would compete for the listener queue): a lake that names it.
    settings = lake.settings.model_copy(
        update={"lake": lake.settings.lake.model_copy(update={"manage": [*lake.settings.lake.manage, "listener"]})}
    )
    with_listener = Lake(settings)
    svc = with_listener.groups()["listener"][0]
    try:
        rows = {r.name: r for r in with_listener.up()}
        assert rows["listener"].state == "up", rows["listener"].log_tail
        assert rows["listener"].log_path == str(lake.paths.logs / "listener.log")
        pid = rows["listener"].pid
        assert pid is not None and svc.proc.is_running()
    finally:
        svc.proc.stop()
    assert not svc.proc.is_running()
    assert next(r for r in with_listener.status() if r.name == "listener").state == "down"


def test_the_slow_daemons_are_threads_of_one_process_each_with_its_heartbeat_log_and_status(lake: Lake) -> None:
    from inlet.lake.services.daemons import GROUPED_DAEMONS

    rows = {r.name: r for r in lake.status()}
    group = rows["rucio-daemons"]
    assert group.state == "up", group.log_tail
    pid = group.pid
    assert pid is not None and group.rss > 0
    for d in GROUPED_DAEMONS:
        row = rows[f"rucio-{d}"]
        # Its own row: the process's pid and state, its own log, no memory of its own (the group's row has it).
        assert (row.state, row.pid, row.rss) == ("up", pid, 0), row
        assert row.log_path == str(lake.paths.logs / f"rucio-{d}.log")
    # To Rucio they are separate daemons: a heartbeat per daemon, all from the one pid.
    with psycopg.connect(libpq_dsn(Postgres(lake.settings, lake.paths).url), autocommit=True) as conn:

        def beating() -> set[str]:
            rows = conn.execute("SELECT DISTINCT readable FROM heartbeats WHERE pid = %s", (pid,)).fetchall()
            return {str(r) for (r,) in rows}

        wait_for("a heartbeat of each grouped daemon", lambda: beating() >= set(GROUPED_DAEMONS), timeout=60)
    # Each daemon's own records are in its own log, written by the group's process.
    for d in GROUPED_DAEMONS:
        text = (lake.paths.logs / f"rucio-{d}.log").read_text(errors="replace")
        assert f"\t{d}\t{pid}\t" in text, d
