"""The lake's broker XML: one login per role, what each may do, and a file only root reads."""

from __future__ import annotations

import configparser
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

from inlet.config import Settings
from inlet.lake.rucio_cfg import render_rucio_cfg
from inlet.lake.services.activemq import ActiveMQ
from inlet.lake.services.base import LakePaths

NS = "{http://activemq.apache.org/schema/core}"


def _prepared(tmp_path: Path) -> tuple[Path, ET.Element]:
    svc = ActiveMQ(Settings(), LakePaths(tmp_path))
    xml = svc.base / "conf" / "activemq.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text("old")
    xml.chmod(0o644)  # a file left by an older version: tightened, not kept
    svc.prepare()
    broker = ET.parse(xml).getroot().find(f"{NS}broker")  # noqa: S314 (our own file)
    assert broker is not None
    return xml, broker


def test_the_broker_xml_holding_passwords_is_0600(tmp_path: Path) -> None:
    xml, _ = _prepared(tmp_path)
    assert stat.S_IMODE(xml.stat().st_mode) == 0o600


def test_each_role_has_its_login_and_only_its_rights(tmp_path: Path) -> None:
    b = Settings().broker
    _, broker = _prepared(tmp_path)
    users = {u.get("username"): u.get("groups") for u in broker.iter(f"{NS}authenticationUser")}
    assert users == {b.username: "inlet", b.hermes_username: "hermes", b.reader_username: "readers"}
    entries = [dict(e.attrib) for e in broker.iter(f"{NS}authorizationEntry")]
    writes = {(e.get("topic") or "queue:" + e.get("queue", "")): set(e["write"].split(",")) for e in entries}
    assert writes["rucio.events"] == {"hermes"}
    assert writes["inlet.events"] == {"inlet"}
    assert writes["queue:>"] == {"inlet"}
    # ActiveMQ grants the union of matching entries: no catch-all topic entry may exist but advisories.
    assert {e.get("topic") for e in entries if e.get("topic")} == {
        "rucio.events",
        "inlet.events",
        "ActiveMQ.Advisory.>",
    }
    assert not any("readers" in e["write"] for e in entries if not e.get("topic", "").startswith("ActiveMQ.Advisory"))
    # The queues the topics forward into exist from start (a forward must not need "admin").
    declared = {q.get("physicalName") for q in broker.find(f"{NS}destinations") or []}
    assert declared == {"inlet.listener.rucio", "inlet.listener.inlet"}


def test_hermes_logs_in_with_its_own_account(tmp_path: Path) -> None:
    s = Settings()
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(render_rucio_cfg(s, LakePaths(tmp_path), "postgresql+psycopg://u:p@127.0.0.1:1/rucio"))
    assert cfg.get("messaging-hermes", "username") == s.broker.hermes_username != s.broker.username
    assert cfg.get("messaging-hermes", "password") == s.broker.hermes_password
