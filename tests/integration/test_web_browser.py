"""``inlet web`` in a real browser (headless Chromium from Debian, driven by Selenium) on the real
lake: Rucio checks the logins, a real uploader worker uploads a run, the lake's conveyor copies it,
hermes and ActiveMQ carry the events, a real ``inlet listen`` moves the run in the catalogue, and
the page shows it move without a reload. Screenshots go to ``test-artifacts/web/``.

Deterministic order of states: the test's stream puts the run on S3 only; the tape rule is added
by the test once the browser has shown ON_S3, so the page must show both states, one after the
other. A second rule, held back for a day (``delay_injection``), stays not OK: the rule a data
manager may boost.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from inlet.catalog import RunState, open_catalog
from inlet.catalog import runs as catalog_runs
from inlet.lake.lake import Lake
from inlet.lake.ports import free_port
from inlet.messaging import Connection
from tests.integration.actors import PASSWORD, Actor, expect_ok
from tests.integration.conftest import BIN, UploaderEnv, daq_files, inlet, python_child, wait_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
#: Generous bounds against a hang, never timing assertions: transfers wait for conveyor passes.
PAGE_WAIT = 180
FLOW_WAIT = 420
STREAM = {
    "tier": "raw",
    "rules": [
        {"rse_expression": "S3"},
        {"rse_expression": "SITE_B_DISK", "delay_injection": 86400, "notify": "N"},
    ],
}
ADD_TAPE_RULE = (
    "import sys; from rucio.client import Client; "
    "print(Client().add_replication_rule([{'scope': sys.argv[1], 'name': sys.argv[2]}], 1, 'TAPE', notify='C')[0])"
)


@pytest.fixture(scope="module")
def accounts(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data manager, a collaboration member and an outsider: real Rucio accounts with userpass."""
    work = tmp_path_factory.mktemp("web-accounts")
    sfx = uuid.uuid4().hex[:6]
    r = lake.settings.rucio
    root = Actor("root", lake, work, r.username, r.password)
    names = {"dm": f"wdm{sfx}", "member": f"wmem{sfx}", "outsider": f"wout{sfx}"}
    attrs = {"dm": ["data-manager"], "member": ["collaboration"], "outsider": []}
    calls: list[tuple[str, list[Any], dict[str, Any]]] = []
    for role, account in names.items():
        calls += [
            ("add_account", [account, "USER", f"{account}@localhost"], {}),
            ("add_identity", [account, account, "USERPASS", f"{account}@localhost"], {"password": PASSWORD}),
        ]
        calls += [("add_account_attribute", [account, key, "True"], {}) for key in attrs[role]]
    expect_ok(root.run(*calls))
    root.close()
    return names


@pytest.fixture(scope="module")
def stack(
    lake: Lake,
    uploader_env: UploaderEnv,
    celery_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """An uploader worker, a listener and ``inlet web``, sharing one environment."""
    logs = tmp_path_factory.mktemp("web-logs")
    env = uploader_env("web", streams=json.dumps({"raw": STREAM}))
    env["INLET_LISTENER__CONSUMER"] = f"web-{uuid.uuid4().hex[:8]}"
    env["INLET_LISTENER__METRICS_PORT"] = str(free_port())
    env["INLET_WEB__PORT"] = str(free_port())
    env["INLET_WEB__SECRET"] = uuid.uuid4().hex
    # The shared lake's catalogue holds every earlier test's runs: one page for a whole
    # experiment, so that a test's run is on the page it watches whatever ran before it.
    env["INLET_WEB__PAGE_SIZE"] = "1000"
    celery_worker(env, f"web-{uuid.uuid4().hex[:6]}")
    procs = []
    with (logs / "listener.log").open("wb") as out:
        procs.append(subprocess.Popen([str(BIN / "inlet"), "-v", "listen"], env=env, stdout=out, stderr=out))
    with (logs / "web.log").open("wb") as out:
        procs.append(subprocess.Popen([str(BIN / "inlet"), "-v", "web"], env=env, stdout=out, stderr=out))
    base = f"http://127.0.0.1:{env['INLET_WEB__PORT']}"

    def up() -> bool:
        assert all(p.poll() is None for p in procs), (logs / "web.log").read_text()[-3000:]
        try:
            return requests.get(f"{base}/login", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for("inlet web to answer", up, 600)  # imports and start-up on a loaded 2-core host
        yield {"env": env, "base": base, "logs": logs}
    finally:  # also when start-up failed: nothing of the test outlives it
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


@pytest.fixture(scope="module")
def browser_factory() -> Iterator[Callable[[], webdriver.Chrome]]:
    assert CHROMIUM and CHROMEDRIVER, "install Debian's chromium and chromium-driver (scripts/setup.sh does)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drivers: list[webdriver.Chrome] = []

    def make() -> webdriver.Chrome:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        driver.set_page_load_timeout(PAGE_WAIT * 2)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        d.quit()


def shot(driver: webdriver.Chrome, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def log_in(driver: webdriver.Chrome, base: str, account: str) -> None:
    driver.get(f"{base}/runs")
    WebDriverWait(driver, PAGE_WAIT).until(lambda d: d.find_elements(By.ID, "login-button"))
    driver.find_element(By.ID, "account-input").send_keys(account)
    driver.find_element(By.ID, "username-input").send_keys(account)
    driver.find_element(By.ID, "password-input").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-button").click()
    WebDriverWait(driver, PAGE_WAIT).until(lambda d: d.find_elements(By.ID, "role"))
    assert driver.find_element(By.ID, "account").text == account


def row_state(driver: webdriver.Chrome, row_id: str) -> str | None:
    try:
        rows = driver.find_elements(By.ID, row_id)
        return rows[0].get_attribute("data-state") if rows else None
    except StaleElementReferenceException:  # swapped by a live update between find and read
        return None


def settled(driver: webdriver.Chrome, read: Callable[[webdriver.Chrome], str | None]) -> str | None:
    """``read`` retried until it ran against one version of the page.

    The pages update themselves live, so an element found a moment ago may have been swapped
    before it is read or clicked; a read that raised StaleElementReference did nothing, so the
    whole read (find, then read or click) is simply done again.
    """
    return WebDriverWait(driver, PAGE_WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(read)


def wait_state(driver: webdriver.Chrome, row_id: str, state: str, log: Path) -> None:
    def reached(d: webdriver.Chrome) -> bool:
        return row_state(d, row_id) == state

    try:
        WebDriverWait(driver, FLOW_WAIT, poll_frequency=0.5).until(reached)
    except Exception:
        shot(driver, f"timeout-{state}")
        raise AssertionError(
            f"{row_id} never showed {state} (last: {row_state(driver, row_id)}); listener log:\n"
            + log.read_text(errors="replace")[-3000:]
        ) from None


def test_a_run_appears_and_moves_to_s3_and_tape_without_a_reload(
    lake: Lake,
    stack: dict[str, Any],
    accounts: dict[str, str],
    browser_factory: Callable[[], webdriver.Chrome],
    tmp_path: Path,
) -> None:
    driver = browser_factory()
    log_in(driver, stack["base"], accounts["member"])
    # cygno's own list: unfiltered, other experiments' runs come first (descending order).
    driver.get(f"{stack['base']}/runs?experiment=cygno")
    WebDriverWait(driver, PAGE_WAIT).until(
        lambda d: d.find_element(By.ID, "live-status").get_attribute("class") == "online"
    )
    # A marker on the window: it survives live updates, and would be gone after a reload.
    driver.execute_script("window.inletNoReload = 'still here';")  # type: ignore[no-untyped-call]
    shot(driver, "01-member-runs-before-upload")

    run = random.randint(100_000, 999_999)
    row = f"run-cygno-{run}"
    files = daq_files(tmp_path / "daq", run, 2)
    res = inlet(stack["env"], "upload", *map(str, files), "--run", str(run), "--stream", "raw", "--end-run")
    assert res.returncode == 0, res.stderr
    wait_state(driver, row, "ON_S3", stack["logs"] / "listener.log")
    shot(driver, "02-run-on-s3")

    scope, dataset = "cygno.raw", f"run{run:06d}.raw"
    python_child(stack["env"], ADD_TAPE_RULE, scope, dataset)
    wait_state(driver, row, "ON_TAPE", stack["logs"] / "listener.log")
    shot(driver, "03-run-on-tape")
    assert driver.execute_script("return window.inletNoReload;") == "still here"  # type: ignore[no-untyped-call]
    cells = {c.get_attribute("data-rse"): c.text for c in driver.find_elements(By.CSS_SELECTOR, f"#{row} td.tier")}
    assert cells["S3"] == "2/2" and cells["TAPE"] == "2/2"


def _embargoed_run(lake: Lake) -> int:
    """A run under embargo until next year, straight in the run catalogue.

    Numbered above every other test's runs (they use six digits): the runs pages list the
    newest first, so it is on the first page of its experiment whatever else the catalogue holds.
    """
    run = random.randint(9_000_000, 9_999_999)
    cat = open_catalog(lake.settings.catalog_url())
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)

    def add(s: Any) -> None:
        r = catalog_runs.upsert_run(
            s, "cygno", run, scope="cygno.raw", dataset=f"run{run:06d}.raw", embargo_until=until
        )
        catalog_runs.add_file(s, r, "cygno.raw", f"run{run:06d}_pmt_0001.mid.gz", 10)
        catalog_runs.transition(s, r, RunState.CLOSED)

    cat.transaction(add)
    cat.dispose()
    return run


def test_an_outsider_sees_no_embargoed_name(
    lake: Lake, stack: dict[str, Any], accounts: dict[str, str], browser_factory: Callable[[], webdriver.Chrome]
) -> None:
    run = _embargoed_run(lake)
    member, outsider = browser_factory(), browser_factory()
    log_in(member, stack["base"], accounts["member"])
    # The experiment's own list: the unfiltered first page is other experiments' runs when the
    # shared catalogue holds many (experiments are listed in descending order).
    member.get(f"{stack['base']}/runs?experiment=cygno")
    WebDriverWait(member, PAGE_WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "main"))
    assert member.find_elements(By.ID, f"run-cygno-{run}"), "the member should see the embargoed run"
    log_in(outsider, stack["base"], accounts["outsider"])
    assert outsider.find_element(By.ID, "role").text == "public"
    shot(outsider, "04-outsider-runs")
    outsider.get(f"{stack['base']}/runs/cygno/{run}")
    WebDriverWait(outsider, PAGE_WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "main"))
    shot(outsider, "05-outsider-embargoed-run-page")
    assert "No such run" in outsider.page_source and str(run) not in outsider.page_source
    for path in (
        "/runs",
        "/runs?experiment=cygno",
        "/runs?fragment=1",
        "/uploader",
        "/listener",
        "/alarms",
        "/rehearsals",
    ):
        outsider.get(stack["base"] + path)
        WebDriverWait(outsider, PAGE_WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "body"))
        assert str(run) not in outsider.page_source, path


def _dead_letter(lake: Lake) -> None:
    """Something the listener cannot read, on inlet's topic: it lands in the DLQ."""
    b = lake.settings.broker
    with Connection(b) as conn:  # persistent, and confirmed by the broker's receipt
        conn.send(b.inlet_topic, "not json at all", headers={"event_type": "web-test"})


def test_only_a_data_manager_sees_and_does_a_data_managers_actions(
    lake: Lake,
    stack: dict[str, Any],
    accounts: dict[str, str],
    browser_factory: Callable[[], webdriver.Chrome],
    tmp_path: Path,
) -> None:
    base = stack["base"]
    _dead_letter(lake)
    run = random.randint(100_000, 999_999)
    files = daq_files(tmp_path / "daq", run, 1)
    res = inlet(stack["env"], "upload", *map(str, files), "--run", str(run), "--stream", "raw", "--end-run")
    assert res.returncode == 0, res.stderr

    member = browser_factory()
    log_in(member, base, accounts["member"])

    def dlq_rows(d: webdriver.Chrome) -> list[Any]:
        d.get(f"{base}/listener")
        return d.find_elements(By.CSS_SELECTOR, "tr[data-dlq]")

    WebDriverWait(member, FLOW_WAIT, poll_frequency=2).until(dlq_rows)
    shot(member, "06-member-listener")
    assert not member.find_elements(By.CSS_SELECTOR, "button.replay")
    member.get(f"{base}/runs/cygno/{run}")
    WebDriverWait(member, PAGE_WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-rule]"))
    assert not member.find_elements(By.CSS_SELECTOR, "button.boost")
    # Posting the action anyway, with the member's own valid CSRF token, is refused.
    rule_id = settled(member, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-rule]")[0].get_attribute("data-rule"))
    status = member.execute_script(  # type: ignore[no-untyped-call]
        "const f = new FormData(); f.append('csrf', document.querySelector('input[name=csrf]').value);"
        "return fetch(arguments[0], {method: 'POST', body: f}).then(r => r.status);",
        f"/runs/cygno/{run}/rules/{rule_id}/boost",
    )
    assert status == 403

    dm = browser_factory()
    log_in(dm, base, accounts["dm"])
    assert dm.find_element(By.ID, "role").text == "data-manager"
    dm.get(f"{base}/runs/cygno/{run}")
    WebDriverWait(dm, PAGE_WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.boost"))
    shot(dm, "07-data-manager-run")

    # The rule held back for a day (SITE_B_DISK) is not OK, whatever the S3 copy is doing.
    def boost_held(d: webdriver.Chrome) -> str | None:
        held = next(r for r in d.find_elements(By.CSS_SELECTOR, "tr[data-rule]") if "SITE_B_DISK" in r.text)
        held_id = held.get_attribute("data-rule")
        held.find_element(By.CSS_SELECTOR, "button.boost").click()
        return held_id

    held_rule = settled(dm, boost_held)
    WebDriverWait(dm, PAGE_WAIT).until(lambda d: d.find_elements(By.ID, "message"))
    assert dm.find_element(By.ID, "message").text == f"rule {held_rule} boosted"
    WebDriverWait(dm, FLOW_WAIT, poll_frequency=2).until(dlq_rows)

    def replay_first(d: webdriver.Chrome) -> str | None:
        row = d.find_elements(By.CSS_SELECTOR, "tr[data-dlq]")[0]
        row_id = row.get_attribute("data-dlq")
        row.find_element(By.CSS_SELECTOR, "button.replay").click()
        return row_id

    replay_id = settled(dm, replay_first)
    WebDriverWait(dm, PAGE_WAIT).until(lambda d: d.find_elements(By.ID, "message"))
    shot(dm, "08-data-manager-replayed")
    assert dm.find_element(By.ID, "message").text == f"replayed {replay_id}"
