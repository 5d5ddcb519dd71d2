"""``GET /follow`` in-process: parameters, refusals, logins, and the stream's own filter.

Rucio is the stand-in of test_web_app (at the REST seam); the catalogue is a real SQLite one.
The real stream over HTTP, with Rucio and the broker, is tests/integration/test_web_follow.py.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.config import load_settings
from inlet.follow.source import Cursor
from inlet.web import follow
from inlet.web.access import Role
from inlet.web.app import create_app
from tests.unit.web.test_web_app import PASSWORDS, FakeRucio, catalog  # noqa: F401 (fixture)


class RucioWithRses(FakeRucio):
    def rse_names(self) -> list[str]:
        return ["SITE_A_DISK", "TAPE"]


@pytest.fixture
def app_client(catalog: Catalog, tmp_path: Path) -> Iterator[TestClient]:  # noqa: F811
    settings = load_settings(web={"secret": "unit-test-secret"}, rehearse={"report_dir": tmp_path / "reports"})
    app = create_app(settings, catalog=catalog, rucio=RucioWithRses(), live=False)  # type: ignore[arg-type]
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def _basic(account: str) -> dict[str, str]:
    raw = f"{account}:{PASSWORDS[account]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


# -- parameters ----------------------------------------------------------------------------------
def test_parameters_and_start_points() -> None:
    req = follow.parse_request({"select": "raw: run_number > 1", "rse": "SITE_A_DISK"}, {})
    assert req.rse == "SITE_A_DISK" and req.resume is None and not req.from_start
    assert follow.parse_request({"select": "*:", "from_start": "1"}, {}).from_start
    assert follow.parse_request({"select": "*:"}, {"last-event-id": "42"}).resume == Cursor(42)
    assert follow.parse_request({"select": "*:", "last_event_id": "7+9"}, {}).resume == Cursor(7, frozenset({9}))
    since = follow.parse_request({"select": "*:", "since": "2026-11-29T10:00:00"}, {}).since
    assert since == dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC)


def test_a_bad_selection_is_one_line_with_a_caret() -> None:
    with pytest.raises(follow.BadFollow) as err:
        follow.parse_request({"select": "raw: run_number = "}, {})
    line = err.value.line
    assert "\n" not in line and "at column 19" in line and "run_number = ^" in line


@pytest.mark.parametrize(
    ("query", "headers", "fragment"),
    [
        ({}, {}, "give a selection"),
        ({"select": "  "}, {}, "give a selection"),
        ({"select": "raw: (" * 3000}, {}, "at most 4000"),
        ({"select": "raw: run_start >= 'notadate'"}, {}, "not a date"),
        ({"select": "*:\n)"}, {}, "bad select"),
        ({"select": "*:", "rse": "SITE A"}, {}, "not an RSE name"),
        ({"select": "*:", "rse": "../etc"}, {}, "not an RSE name"),
        ({"select": "*:"}, {"last-event-id": "-1"}, "Last-Event-ID"),
        ({"select": "*:"}, {"last-event-id": "abc"}, "Last-Event-ID"),
        ({"select": "*:"}, {"last-event-id": "9" * 40}, "Last-Event-ID"),
        ({"select": "*:", "last_event_id": "5+3"}, {}, "Last-Event-ID"),
        ({"select": "*:", "from_start": "yes please"}, {}, "from_start"),
        ({"select": "*:", "since": "yesterday"}, {}, "since"),
        ({"select": "*:", "since": "2026-01-01", "from_start": "1"}, {}, "not both"),
    ],
)
def test_hostile_parameters_are_refused_in_one_line(
    query: dict[str, str], headers: dict[str, str], fragment: str
) -> None:
    with pytest.raises(follow.BadFollow) as err:
        follow.parse_request(query, headers)
    assert fragment in err.value.line and "\n" not in err.value.line
    assert 400 <= err.value.status < 500


def test_event_ids_are_plain_seqs_unless_a_gap_is_open() -> None:
    assert follow.position(Cursor(4, frozenset({5, 6, 7}))) == "7"
    assert follow.position(Cursor(4, frozenset({6, 7}))) == "4+6,7"
    assert follow.position(Cursor(4)) == "4"


# -- over HTTP, without the stream ------------------------------------------------------------------
def test_refusals_over_http(app_client: TestClient) -> None:
    res = app_client.get("/follow", params={"select": "raw: run = "}, headers=_basic("outsider"))
    assert res.status_code == 400 and res.text.count("\n") == 1 and "^" in res.text
    assert app_client.get("/follow", params={"select": "*:"}).status_code == 401
    res = app_client.get("/follow", params={"select": "*:"}, headers={"Authorization": "Basic b3V0c2lkZXI6bm8="})
    assert res.status_code == 401 and "Cannot authenticate" in res.text and res.text.count("\n") == 1
    res = app_client.get("/follow", params={"select": "*:"}, headers={"X-Rucio-Auth-Token": "tok-nobody"})
    assert res.status_code == 401
    res = app_client.get("/follow", params={"select": "*:", "rse": "NO_SUCH_RSE"}, headers=_basic("member"))
    assert res.status_code == 404 and "unknown RSE 'NO_SUCH_RSE'" in res.text
    res = app_client.get("/follow", params={"select": "*:"}, headers={"Last-Event-ID": "-5", **_basic("member")})
    assert res.status_code == 400 and "Last-Event-ID" in res.text


def test_logins_become_followers_with_roles_and_attributes(app_client: TestClient) -> None:
    web = app_client.app.state.web  # type: ignore[attr-defined]

    def who(headers: dict[str, str]) -> follow.Follower | None:
        request = type("R", (), {"headers": {k.lower(): v for k, v in headers.items()}, "scope": {}})()
        return follow.authenticate(web, request)  # type: ignore[arg-type]

    assert who({}) is None
    out = who(_basic("outsider"))
    assert out is not None and out.role is Role.PUBLIC and out.attributes == frozenset()
    member = who({"X-Rucio-Auth-Token": "tok-member"})
    assert member is not None and member.role is Role.COLLABORATION and "collaboration" in member.attributes


# -- the stream itself, in-process ----------------------------------------------------------------------
def _events(web: Any, account: str, role: Role, attrs: frozenset[str], req: follow.FollowRequest, n: int) -> list[Any]:
    """The first ``n`` events of a stream from seq 0 (or fewer if nothing more comes within 2 s)."""
    out: list[Any] = []

    async def run() -> None:
        import anyio

        web.follow_slots = anyio.CapacityLimiter(2)
        gen = follow.file_events(web, follow.Follower(account, role, attrs), req, Cursor(0))
        try:
            while len(out) < n:
                out.append(await asyncio.wait_for(anext(gen), 2.0))
        except TimeoutError:
            pass
        finally:
            await gen.aclose()

    asyncio.run(run())
    return out


def test_an_outsider_never_gets_an_embargoed_file_a_member_does(app_client: TestClient) -> None:
    web = app_client.app.state.web  # type: ignore[attr-defined]
    req = follow.parse_request({"select": "*:"}, {})
    outsider = _events(web, "outsider", Role.PUBLIC, frozenset(), req, 5)
    assert [json.loads(e["data"])["run_number"] for e in outsider] == [1]
    member = _events(web, "member", Role.COLLABORATION, frozenset({"collaboration"}), req, 5)
    assert sorted(json.loads(e["data"])["run_number"] for e in member) == [1, 2]
    assert all(e["event"] == "file" and e["id"].isdigit() for e in member)
    # A data manager without the collaboration attribute: the web role would show the run, the
    # policy's read decision does not: both must agree, so it is not sent.
    dm = _events(web, "dm", Role.DATA_MANAGER, frozenset({"data-manager"}), req, 5)
    assert [json.loads(e["data"])["run_number"] for e in dm] == [1]


def test_resume_sends_exactly_the_files_after_the_id(app_client: TestClient, catalog: Catalog) -> None:  # noqa: F811
    def more(s: Any) -> None:
        run = catalog_runs.get_run(s, "cygno", 1)
        for i in range(2, 6):
            f = catalog_runs.add_file(s, run, "cygno.raw", f"run000001_{i:04d}.mid.gz", 10)
            catalog_runs.mark_available(s, f.scope, f.name, "SITE_A_DISK")

    catalog.transaction(more)
    web = app_client.app.state.web  # type: ignore[attr-defined]
    req = follow.parse_request({"select": "cygno.raw: run_number = 1"}, {})
    everything = _events(web, "member", Role.COLLABORATION, frozenset({"collaboration"}), req, 10)
    assert len(everything) == 5
    cut = everything[1]["id"]
    resumed_req = follow.parse_request({"select": "cygno.raw: run_number = 1"}, {"last-event-id": cut})
    assert resumed_req.resume is not None

    async def resumed() -> list[Any]:
        import anyio

        web.follow_slots = anyio.CapacityLimiter(2)
        got: list[Any] = []
        gen = follow.file_events(
            web,
            follow.Follower("member", Role.COLLABORATION, frozenset({"collaboration"})),
            resumed_req,
            resumed_req.resume,
        )
        try:
            while True:
                got.append(await asyncio.wait_for(anext(gen), 2.0))
        except TimeoutError:
            pass
        finally:
            await gen.aclose()
        return got

    after = asyncio.run(resumed())
    assert [e["data"] for e in after] == [e["data"] for e in everything[2:]]


def test_a_slow_reader_loses_nothing(
    app_client: TestClient,
    catalog: Catalog,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream only reads the catalogue when its client takes the next event: files written while
    the client does not read (more than a batch) come later, in order, none lost or repeated."""
    monkeypatch.setattr(follow, "IDLE_CHECK", 0.5)  # no broker here: the idle look is the wake-up
    web = app_client.app.state.web  # type: ignore[attr-defined]
    req = follow.parse_request({"select": "cygno.raw: run_number = 3"}, {})
    names = [f"run000003_{i:04d}.mid.gz" for i in range(follow.BATCH * 2 + 5)]

    def write(part: list[str]) -> None:
        def work(s: Any) -> None:
            run = catalog_runs.upsert_run(s, "cygno", 3, scope="cygno.raw", dataset="run000003.raw")
            for name in part:
                f = catalog_runs.add_file(s, run, "cygno.raw", name, 10)
                catalog_runs.mark_available(s, f.scope, f.name, "SITE_A_DISK")

        catalog.transaction(work)

    async def run() -> list[str]:
        import anyio

        web.follow_slots = anyio.CapacityLimiter(2)
        member = follow.Follower("member", Role.COLLABORATION, frozenset({"collaboration"}))
        gen = follow.file_events(web, member, req, Cursor(0))
        got: list[str] = []
        try:
            write(names[:1])
            got.append(json.loads((await asyncio.wait_for(anext(gen), 10))["data"])["name"])
            write(names[1:])  # the client reads nothing meanwhile
            while len(got) < len(names):
                got.append(json.loads((await asyncio.wait_for(anext(gen), 30))["data"])["name"])
        finally:
            await gen.aclose()
        return got

    assert asyncio.run(run()) == names
