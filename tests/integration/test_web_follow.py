"""``inlet web``'s ``/follow`` stream on the real lake: Rucio checks the logins (real accounts,
userpass over HTTP basic auth and Rucio tokens), the lake's PostgreSQL catalogue holds the files,
ActiveMQ wakes the stream.

Files enter the catalogue as the listener records them (``inlet.catalog.runs.mark_available``,
the listener's own call) and a message on the inlet topic wakes the web server, as the
listener's run events do: the test controls which file is embargoed and in which order they
come, which the whole upload flow (test_web_browser.py) would leave to the conveyor.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import random
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inlet.catalog import open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.event_contract import FILE_REGISTERED, envelope, file_event_id, publish_headers
from inlet.lake.lake import Lake
from inlet.lake.ports import free_port
from inlet.messaging import Connection
from tests.integration.actors import PASSWORD, Actor, expect_ok
from tests.integration.conftest import BIN, wait_for
from tests.integration.sse_client import SSEvent, events

#: Bounds against a hang, never timing assertions.
STREAM_WAIT = 120.0
RSE = "SITE_A_DISK"


@pytest.fixture(scope="module")
def accounts(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A collaboration member and an outsider (no attribute at all): real Rucio accounts."""
    work = tmp_path_factory.mktemp("follow-accounts")
    sfx = uuid.uuid4().hex[:6]
    r = lake.settings.rucio
    root = Actor("root", lake, work, r.username, r.password)
    names = {"member": f"fmem{sfx}", "outsider": f"fout{sfx}"}
    calls: list[tuple[str, list[Any], dict[str, Any]]] = []
    for role, account in names.items():
        calls += [
            ("add_account", [account, "USER", f"{account}@localhost"], {}),
            ("add_identity", [account, account, "USERPASS", f"{account}@localhost"], {"password": PASSWORD}),
        ]
        if role == "member":
            calls.append(("add_account_attribute", [account, "collaboration", "True"], {}))
    expect_ok(root.run(*calls))
    root.close()
    return names


@pytest.fixture(scope="module")
def web(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``inlet web`` on the lake, as a site runs it; its base URL."""
    logs = tmp_path_factory.mktemp("follow-web")
    env = {
        **os.environ,
        **lake.rucio_client_env(),
        **lake.exports(),
        "INLET_WEB__PORT": str(free_port()),
        "INLET_WEB__SECRET": uuid.uuid4().hex,
    }
    with (logs / "web.log").open("wb") as out:
        proc = subprocess.Popen([str(BIN / "inlet"), "-v", "web"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{env['INLET_WEB__PORT']}"

    def up() -> bool:
        assert proc.poll() is None, (logs / "web.log").read_text()[-3000:]
        try:
            return httpx.get(f"{base}/login", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("inlet web to answer", up, 600)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def catalog(lake: Lake) -> Iterator[Catalog]:
    cat = open_catalog(lake.settings.catalog_url())
    yield cat
    cat.dispose()


class Follower:
    """One HTTP follower in a thread: its events arrive on ``inbox``; ``close()`` hangs up."""

    def __init__(
        self,
        base: str,
        select: str,
        *,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.inbox: queue.Queue[SSEvent] = queue.Queue()
        self.status: queue.Queue[int] = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None), auth=auth)
        self._args = {"params": {"select": select, **(params or {})}, "headers": headers or {}}
        self._url = f"{base}/follow"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.status.get(timeout=STREAM_WAIT) == 200

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self._url, **self._args) as res:
                self.status.put(res.status_code)
                for ev in events(res.iter_lines()):
                    self.inbox.put(ev)
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise

    def next(self) -> SSEvent:
        return self.inbox.get(timeout=STREAM_WAIT)

    def until(self, name: str) -> list[SSEvent]:
        """Every event up to and including the first whose file is ``name``."""
        got = []
        while True:
            ev = self.next()
            got.append(ev)
            if json.loads(ev.data)["name"] == name:
                return got

    def close(self) -> None:
        self._stop.set()
        self._client.close()


def _write(
    catalog: Catalog, experiment: str, run: int, names: list[str], embargo: dt.datetime | None, rse: str = RSE
) -> None:
    """Record a run's files as available on RSE, the way the listener records them."""

    def work(s: Any) -> None:
        r = catalog_runs.upsert_run(
            s, experiment, run, scope=f"{experiment}.raw", dataset=f"run{run:06d}.raw", embargo_until=embargo
        )
        for name in names:
            catalog_runs.add_file(s, r, f"{experiment}.raw", name, 1000, adler32="0a0b0c0d")
            catalog_runs.mark_available(s, f"{experiment}.raw", name, rse)

    catalog.transaction(work)


def _announce(lake: Lake, experiment: str, run: int, names: list[str]) -> None:
    """The uploader's ``file-registered`` events for these files: what wakes a web server's one
    broker subscription (a listener that reads them finds the files already catalogued)."""
    b = lake.settings.broker
    conn = Connection(b, role="inlet")
    conn.connect()
    try:
        for name in names:
            scope = f"{experiment}.raw"
            payload = {
                "scope": scope,
                "name": name,
                "did": f"{scope}:{name}",
                "experiment": experiment,
                "run": run,
                "dataset": f"{scope}:run{run:06d}.raw",
                "bytes": 1000,
                "adler32": "0a0b0c0d",
                "rse": RSE,
            }
            event = envelope(FILE_REGISTERED, payload, file_event_id(FILE_REGISTERED, scope, name))
            conn.send(b.inlet_topic, json.dumps(event), publish_headers(event))
    finally:
        conn.close()


def test_outsiders_never_get_embargoed_names_members_do_and_resume_is_exact(
    lake: Lake, web: str, accounts: dict[str, str], catalog: Catalog
) -> None:
    exp = f"wf{uuid.uuid4().hex[:6]}"
    base_run = random.randint(100_000, 900_000)
    secret = [f"run{base_run:06d}_{i:04d}.secret.mid.gz" for i in range(3)]
    public = [f"run{base_run + 1:06d}_{i:04d}.mid.gz" for i in range(3)]
    later = [f"run{base_run + 1:06d}_{i:04d}.mid.gz" for i in range(3, 5)]
    outsider = Follower(web, "*:", auth=(accounts["outsider"], PASSWORD))
    token = httpx.get(
        f"{lake.settings.rucio.host.rstrip('/')}/auth/userpass",
        headers={
            "X-Rucio-Account": accounts["member"],
            "X-Rucio-Username": accounts["member"],
            "X-Rucio-Password": PASSWORD,
        },
        timeout=30,
    ).headers["X-Rucio-Auth-Token"]
    member = Follower(web, "*:", headers={"X-Rucio-Auth-Token": token})
    try:
        # Live: an embargoed run's files, then a public run's, then more public files.
        _write(catalog, exp, base_run, secret, dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
        _announce(lake, exp, base_run, secret)
        _write(catalog, exp, base_run + 1, public, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        _announce(lake, exp, base_run + 1, public)
        seen_member = member.until(public[-1])
        seen_outsider = outsider.until(public[-1])
        _write(catalog, exp, base_run + 1, later, None)
        _announce(lake, exp, base_run + 1, later)
        seen_member += member.until(later[-1])
        seen_outsider += outsider.until(later[-1])
    finally:
        outsider.close()
        member.close()

    mine = [json.loads(e.data) for e in seen_member if json.loads(e.data)["experiment"] == exp]
    theirs = [json.loads(e.data) for e in seen_outsider]
    assert [d["name"] for d in mine] == secret + public + later
    assert not {d["name"] for d in theirs} & set(secret), "an outsider received an embargoed name"
    assert not any(d["embargo_until"] and d["embargo_until"] > dt.datetime.now(dt.UTC).isoformat() for d in theirs)
    assert [d["name"] for d in theirs if d["experiment"] == exp] == public + later
    assert all(e.event == "file" and e.id.isdigit() for e in seen_member)

    # Resume after the member's second public file: exactly the files after it, nothing else.
    cut = next(e for e in seen_member if json.loads(e.data)["name"] == public[1])
    again = Follower(
        web, f"*: experiment = '{exp}'", auth=(accounts["member"], PASSWORD), headers={"Last-Event-ID": cut.id}
    )
    try:
        rest = again.until(later[-1])
    finally:
        again.close()
    assert [json.loads(e.data)["name"] for e in rest] == [public[2], *later]

    # From the start, restricted to the run catalogue's experiment and the RSE: the outsider's
    # history holds the public files only (the SQL and the policy's decision both hide the rest).
    hist = Follower(
        web, f"*: experiment = '{exp}'", auth=(accounts["outsider"], PASSWORD), params={"from_start": "1", "rse": RSE}
    )
    try:
        got = hist.until(later[-1])
    finally:
        hist.close()
    assert [json.loads(e.data)["name"] for e in got] == public + later


def test_refusals_are_one_line(web: str, accounts: dict[str, str]) -> None:
    auth = (accounts["outsider"], PASSWORD)
    cases = [
        ({"select": "raw: run_number = "}, {}, 400, "^"),
        ({"select": "*:", "rse": "NO_SUCH_RSE"}, {}, 404, "unknown RSE"),
        ({"select": "*:"}, {"Last-Event-ID": "-3"}, 400, "Last-Event-ID"),
        ({"select": "*:"}, {"Last-Event-ID": "'; drop table runs; --"}, 400, "Last-Event-ID"),
        ({"select": "raw: (" * 2000}, {}, 414, "at most"),
    ]
    for params, headers, status, fragment in cases:
        res = httpx.get(f"{web}/follow", params=params, headers=headers, auth=auth, timeout=60)
        assert res.status_code == status and fragment in res.text and res.text.count("\n") == 1, (params, res.text)
    res = httpx.get(f"{web}/follow", params={"select": "*:"}, auth=(accounts["outsider"], "wrong"), timeout=60)
    assert res.status_code == 401 and res.text.count("\n") == 1
    assert httpx.get(f"{web}/follow", params={"select": "*:"}, timeout=60).status_code == 401


def test_the_readme_curl_example_works(web: str, accounts: dict[str, str], catalog: Catalog) -> None:
    """README's curl command, pointed at this server and account: it prints the SSE stream."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = iter(readme[readme.index("$ curl -N -u alice") :].splitlines())
    command = next(lines).removeprefix("$ ")
    while command.endswith("\\"):
        command = command[:-1] + next(lines)
    command = command.replace("http://127.0.0.1:8480", web)
    exp = f"wc{uuid.uuid4().hex[:6]}"
    names = [f"run005001_{i:04d}_{exp}.mid.gz" for i in range(2)]
    _write(catalog, exp, 5001, names, None, rse="TAPE")
    command = command.replace("alice:PASSWORD", f"{accounts['outsider']}:{PASSWORD}").replace(
        "'select=raw: run_number > 5000'", f"'select=raw: run_number > 5000 and experiment = {exp}'"
    )
    out = subprocess.run(["bash", "-c", f"{command} --max-time 20"], capture_output=True, text=True, timeout=120)
    got = [json.loads(e.data)["name"] for e in events(iter(out.stdout.splitlines()))]
    assert got == names, (command, out.stdout[-2000:], out.stderr[-2000:])
