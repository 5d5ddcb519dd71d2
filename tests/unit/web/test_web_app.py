"""The web application in-process (Starlette's test client), with a stand-in for Rucio at the
REST seam (:class:`inlet.web.rucio_rest.RucioRest`) and a real SQLite run catalogue.

What is checked here: logins and roles, the embargo filter on every page that names runs,
CSRF and role checks on actions, the live part of a page, no open redirect. The same app is
driven by a real browser against the real lake in tests/integration/test_web_browser.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from inlet.catalog import RunState, open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.catalog.db import Catalog
from inlet.config import load_settings
from inlet.web.access import Role, Viewer, role_of
from inlet.web.app import create_app
from inlet.web.rucio_rest import RucioRefused

PASSWORDS = {"dm": "dm-pw", "member": "member-pw", "outsider": "out-pw"}
ATTRS = {"dm": {"data-manager": "True"}, "member": {"collaboration": "True"}, "outsider": {}}


class FakeRucio:
    """Accepts the accounts above (userpass: username = account) and tokens "tok-<account>"."""

    def __init__(self) -> None:
        self.boosted: list[str] = []

    def login_userpass(self, account: str, username: str, password: str) -> Any:
        if PASSWORDS.get(account) != password or username != account:
            raise RucioRefused("Cannot authenticate with given credentials")
        return type("T", (), {"token": f"tok-{account}"})()

    def whoami(self, token: str) -> str:
        account = token.removeprefix("tok-")
        if account not in PASSWORDS:
            raise RucioRefused("Cannot authenticate with given credentials")
        return account

    def account_attributes(self, account: str) -> dict[str, str]:
        return ATTRS[account]

    def did_rules(self, scope: str, name: str) -> list[dict[str, Any]]:
        return [{"id": "r" * 32, "rse_expression": "TAPE", "state": "STUCK", "locks_stuck_cnt": 2}]

    def dataset_files(self, scope: str, name: str) -> list[dict[str, Any]]:
        return []

    def rule(self, rule_id: str) -> dict[str, Any]:
        return {"id": rule_id, "scope": "cygno.raw", "name": "run000002.raw", "state": "STUCK"}

    def boost_rule(self, rule_id: str) -> None:
        self.boosted.append(rule_id)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)

    def fill(s: Any) -> None:
        public = catalog_runs.upsert_run(s, "cygno", 1, scope="cygno.raw", dataset="run000001.raw", embargo_until=past)
        secret = catalog_runs.upsert_run(
            s, "cygno", 2, scope="cygno.raw", dataset="run000002.raw", embargo_until=future
        )
        for run in (public, secret):
            f = catalog_runs.add_file(s, run, "cygno.raw", f"run{run.run_number:06d}_0001.mid.gz", 10)
            catalog_runs.transition(s, run, RunState.CLOSED)
            catalog_runs.transition(s, run, RunState.UPLOADED)
            catalog_runs.mark_available(s, f.scope, f.name, "SITE_A_DISK")

    cat.transaction(fill)
    yield cat
    cat.dispose()


@pytest.fixture
def rucio() -> FakeRucio:
    return FakeRucio()


@pytest.fixture
def client(catalog: Catalog, rucio: FakeRucio, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(web={"secret": "unit-test-secret"}, rehearse={"report_dir": tmp_path / "reports"})
    app = create_app(settings, catalog=catalog, rucio=rucio, live=False)  # type: ignore[arg-type]
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def login(client: TestClient, account: str, next_: str = "/runs") -> Any:
    page = client.get(f"/login?next={next_}")
    return client.post(
        "/login",
        data={
            "csrf": _csrf(page.text),
            "account": account,
            "username": account,
            "password": PASSWORDS[account],
            "next": next_,
        },
    )


def test_pages_need_a_login(client: TestClient) -> None:
    for path in ("/runs", "/runs/cygno/1", "/uploader", "/listener", "/alarms", "/rehearsals", "/events"):
        res = client.get(path, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/login?next="), path


def test_wrong_password_is_refused_with_rucios_reason(client: TestClient) -> None:
    page = client.get("/login")
    res = client.post("/login", data={"csrf": _csrf(page.text), "account": "dm", "username": "dm", "password": "no"})
    assert res.status_code == 401 and "Cannot authenticate" in res.text
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_login_without_the_forms_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    res = client.post("/login", data={"csrf": "forged", "account": "dm", "username": "dm", "password": "dm-pw"})
    assert res.status_code == 400
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_token_login_and_no_open_redirect(client: TestClient) -> None:
    page = client.get("/login")
    res = client.post(
        "/login",
        data={"csrf": _csrf(page.text), "token": "tok-member", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert res.status_code == 303 and res.headers["location"] == "/runs"
    assert 'id="role">collaboration<' in client.get("/runs").text


def test_outsider_sees_no_embargoed_name_anywhere(client: TestClient) -> None:
    assert login(client, "outsider").status_code == 200
    pages = {p: client.get(p) for p in ("/runs", "/runs?fragment=1", "/alarms", "/rehearsals", "/uploader")}
    for path, res in pages.items():
        assert "run000002" not in res.text and "run-cygno-2" not in res.text, path
    assert 'id="run-cygno-1"' in pages["/runs"].text
    # The run page of an embargoed run is the same 404 as a run that does not exist.
    hidden, absent = client.get("/runs/cygno/2"), client.get("/runs/cygno/999")
    assert hidden.status_code == absent.status_code == 404
    assert "run000002" not in hidden.text


def test_member_sees_everything_but_may_not_act(client: TestClient, rucio: FakeRucio) -> None:
    login(client, "member")
    runs = client.get("/runs").text
    assert 'id="run-cygno-2"' in runs and 'id="run-cygno-1"' in runs
    run = client.get("/runs/cygno/2").text
    assert "run000002_0001.mid.gz" in run and "STUCK" in run
    assert "boost" not in run and "replay" not in client.get("/listener").text
    res = client.post(f"/runs/cygno/2/rules/{'r' * 32}/boost", data={"csrf": _csrf(run)})
    assert res.status_code == 403 and rucio.boosted == []


def test_data_manager_boosts_a_rule_of_the_run_with_csrf(client: TestClient, rucio: FakeRucio) -> None:
    login(client, "dm")
    run = client.get("/runs/cygno/2").text
    assert 'class="boost"' in run
    forged = client.post(f"/runs/cygno/2/rules/{'r' * 32}/boost", data={"csrf": "forged"})
    assert forged.status_code == 403 and rucio.boosted == []
    cross = client.post(
        f"/runs/cygno/2/rules/{'r' * 32}/boost", data={"csrf": _csrf(run)}, headers={"origin": "http://evil.example"}
    )
    assert cross.status_code == 403 and rucio.boosted == []
    done = client.post(f"/runs/cygno/2/rules/{'r' * 32}/boost", data={"csrf": _csrf(run)})
    assert done.status_code == 200 and "boosted" in done.text
    assert rucio.boosted == ["r" * 32]
    # A rule of another run is not boosted through this run's page.
    other = client.post(f"/runs/cygno/1/rules/{'r' * 32}/boost", data={"csrf": _csrf(run)})
    assert "not boosted" in other.text and len(rucio.boosted) == 1


def test_fragment_is_the_live_part_only(client: TestClient) -> None:
    login(client, "member")
    frag = client.get("/runs?fragment=1").text
    assert "<html" not in frag and 'id="run-cygno-1"' in frag and 'data-state="UPLOADED"' in frag


def test_logout_needs_the_csrf_token(client: TestClient) -> None:
    login(client, "member")
    client.post("/logout", data={"csrf": "forged"})
    page = client.get("/runs")
    assert page.status_code == 200 and 'id="account">member<' in page.text
    client.post("/logout", data={"csrf": _csrf(page.text)})
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_security_headers(client: TestClient) -> None:
    res = client.get("/login")
    assert "default-src 'self'" in res.headers["content-security-policy"]
    assert res.headers["x-frame-options"] == "DENY"
    assert "httponly" in res.headers["set-cookie"].lower() and "samesite=strict" in res.headers["set-cookie"].lower()


def test_the_session_cookie_holds_no_rucio_token(client: TestClient) -> None:
    import base64

    login(client, "dm")
    cookie = client.cookies["inlet_session"]
    payload = base64.b64decode(cookie.split(".")[0] + "==")
    assert b"tok-" not in payload and b'"account": "dm"' in payload


def test_roles_from_rucio_attributes() -> None:
    web = load_settings().web
    assert role_of("root", {}, web) is Role.DATA_MANAGER
    assert role_of("a", {"data-manager": "True"}, web) is Role.DATA_MANAGER
    assert role_of("a", {"data-manager": "False", "collaboration": "1"}, web) is Role.COLLABORATION
    assert role_of("a", {"embargo-admin": "True"}, web) is Role.PUBLIC
    outsider = Viewer("a", Role.PUBLIC)
    assert not outsider.may_see_run(dt.datetime(2999, 1, 1, tzinfo=dt.UTC))
    assert not outsider.may_see_run("not a date")  # unreadable: embargoed (fail closed)
    assert outsider.may_see_run(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) and outsider.may_see_run(None)
