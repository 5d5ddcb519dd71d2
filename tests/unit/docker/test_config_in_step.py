"""The deployment's configuration says what `inlet lake` says: rucio.cfg, broker XML, inlet settings."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import xml.etree.ElementTree as ET  # our own files, not untrusted input
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from inlet.config import Settings
from inlet.lake.rucio_cfg import render_rucio_cfg
from inlet.lake.services.activemq import BROKER_XML, ActiveMQ
from inlet.lake.services.base import LakePaths
from tests.unit.docker.deployment import DOCKER, MERGE_TOOL, environment, merged_rucio_cfg, services

#: Options whose value is the deployment's own (hosts, paths, secrets); everything else must be
#: the value `inlet lake` renders.
SITE_SPECIFIC = {
    ("client", "rucio_host"),
    ("client", "auth_host"),
    ("client", "password"),
    ("client", "auth_token_file_path"),
    ("common", "logdir"),
    ("common", "mailtemplatedir"),
    ("database", "default"),
    ("alembic", "cfg"),
    ("bootstrap", "userpass_pwd"),
    ("bootstrap", "userpass_email"),
    ("policy", "support"),
    ("policy", "inlet_naming_file"),
    ("messaging-hermes", "brokers"),
    ("messaging-hermes", "port"),
    ("messaging-hermes", "nonssl_port"),
    ("messaging-hermes", "password"),
    ("metadata", "inlet_catalog_url"),
    # Both run one memcached shared by every Rucio process, at their own address: the lake's on
    # 127.0.0.1:<its port>, the deployment's the memcached service (memcached:11211).
    ("cache", "url"),
}
#: Options only the deployment sets (none at the moment).
DEPLOYMENT_ONLY: set[tuple[str, str]] = set()
RUCIO_SERVICES = ["rucio-server", "judge-evaluator", "judge-repairer", "hermes", "reaper", "undertaker"]
RUCIO_SERVICES += ["abacus-account", "abacus-rse", "conveyor"]


def lake_rucio_cfg(tmp_path: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(render_rucio_cfg(Settings(), LakePaths(tmp_path / "lake"), "postgresql+psycopg://u:p@h/rucio"))
    return cfg


def test_the_merge_tool_the_images_use_is_installed() -> None:
    assert MERGE_TOOL.is_file(), "the rucio package no longer ships tools/merge_rucio_configs.py"


def test_rucio_cfg_of_the_deployment_is_the_lakes_with_site_values(tmp_path: Path) -> None:
    # rucio-init carries everything (the catalogue bootstrap needs [alembic] too).
    ours = merged_rucio_cfg(environment(services()["rucio-init"]), tmp_path)
    lake = lake_rucio_cfg(tmp_path)
    missing, differ = [], []
    for section in lake.sections():
        for option, value in lake.items(section):
            if not ours.has_option(section, option):
                missing.append(f"[{section}] {option}")
            elif (section, option) not in SITE_SPECIFIC and ours.get(section, option) != value:
                differ.append(f"[{section}] {option} = {ours.get(section, option)!r}, the lake says {value!r}")
    extra = [
        f"[{s}] {o}"
        for s in ours.sections()
        for o, _ in ours.items(s)
        if not lake.has_option(s, o) and (s, o) not in DEPLOYMENT_ONLY
    ]
    assert (missing, differ, extra) == ([], [], [])


def test_site_values_point_at_the_deployments_services(tmp_path: Path) -> None:
    cfg = merged_rucio_cfg(environment(services()["rucio-init"]), tmp_path)
    assert cfg.get("client", "rucio_host") == "http://rucio-server:80"  # the official image's Apache
    assert cfg.get("cache", "url") == "memcached:11211"
    assert cfg.get("database", "default").endswith("@postgres:5432/rucio")
    assert cfg.get("messaging-hermes", "brokers") == "activemq"
    assert cfg.get("metadata", "inlet_catalog_url").endswith("@mariadb:3306/inlet")
    assert cfg.get("policy", "inlet_naming_file") == "/etc/inlet/inlet.toml"


@pytest.mark.parametrize("name", RUCIO_SERVICES)
def test_every_rucio_process_gets_the_same_configuration(name: str) -> None:
    init = {k: v for k, v in environment(services()["rucio-init"]).items() if k != "RUCIO_CFG_ALEMBIC_CFG"}
    env = environment(services()[name])
    assert {k: env.get(k) for k in init} == init


@pytest.mark.parametrize("name", ["uploader", "watcher", "listener", "reco", "bootstrap"])
def test_inlet_services_are_rucio_clients_with_the_policy_package(name: str, tmp_path: Path) -> None:
    env = environment(services()[name])
    cfg = merged_rucio_cfg(env, tmp_path)
    assert cfg.get("policy", "package") == "rucio_inlet"  # clients compute run-partitioned paths
    assert cfg.get("client", "rucio_host") == env["INLET_RUCIO__HOST"]
    assert not cfg.has_section("database"), "inlet's services must not hold Rucio's database password"


def _settings_path(key: str) -> list[str]:
    return key.removeprefix("INLET_").lower().split("__")


def _resolve(model: type[BaseModel], path: list[str]) -> Any:
    field = model.model_fields.get(path[0])
    assert field is not None, f"{model.__name__} has no {path[0]}"
    if len(path) == 1:
        return field
    sub = field.annotation
    assert isinstance(sub, type) and issubclass(sub, BaseModel), f"{path[0]} is not a section"
    return _resolve(sub, path[1:])


def test_every_inlet_variable_is_a_real_setting() -> None:
    for svc in services().values():
        for key in environment(svc):
            if key.startswith("INLET_") and key != "INLET_CONFIG":
                _resolve(Settings, _settings_path(key))  # raises with the unknown name


def test_inlet_services_load_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("uploader", "watcher", "listener", "reco", "bootstrap", "conveyor"):
        for key, value in environment(services()[name]).items():
            if key.startswith("INLET_"):
                monkeypatch.setenv(key, str(DOCKER / "config" / "inlet.toml") if key == "INLET_CONFIG" else value)
        s = Settings()
        assert s.broker.host == "activemq" or name == "conveyor"
        assert s.s3.endpoint == "http://minio:9000"


def test_the_policy_package_reads_the_same_naming_as_inlet(monkeypatch: pytest.MonkeyPatch) -> None:
    # One file, two readers: inlet's settings and the policy package inside Rucio.
    from rucio_inlet.naming import read_naming_file

    path = DOCKER / "config" / "inlet.toml"
    monkeypatch.setenv("INLET_CONFIG", str(path))
    assert read_naming_file(path) == Settings().naming


def _broker(xml: str) -> ET.Element:
    ns = {"a": "http://activemq.apache.org/schema/core"}
    broker = ET.fromstring(xml).find("a:broker", ns)  # noqa: S314 (our own files)
    assert broker is not None
    return broker


def _lake_broker_xml(tmp_path: Path) -> str:
    amq = ActiveMQ(Settings(), LakePaths(tmp_path))
    return BROKER_XML.format(
        data='"d"',
        kahadb='"k"',
        user='"u"',
        password='"p"',
        hermes_user='"h"',
        hermes_password='"hp"',
        reader_user='"r"',
        reader_password='"rp"',
        openwire=1,
        stomp=2,
        composites=amq.composite_topics(),
        queues=amq.listener_queues(),
        authorization=amq.authorization_entries(),
    )


def _shape(broker: ET.Element, path: str) -> list[tuple[str, dict[str, str]]]:
    ns = "{http://activemq.apache.org/schema/core}"
    found = broker.find(path.replace("a:", ns))
    assert found is not None, path
    return [(el.tag.replace(ns, ""), dict(el.attrib)) for el in found.iter()]


def test_the_broker_forwards_and_dead_letters_as_the_lakes(tmp_path: Path) -> None:
    ours = _broker((DOCKER / "activemq" / "activemq.xml").read_text())
    lake = _broker(_lake_broker_xml(tmp_path))
    for path in ("a:destinationInterceptors", "a:destinations"):
        assert _shape(ours, path) == _shape(lake, path), path

    # The same policies; only the per-destination heap cap is sized for each broker's heap.
    def policies(broker: ET.Element) -> list[tuple[str, dict[str, str]]]:
        return [
            (tag, {k: v for k, v in attrs.items() if k != "memoryLimit"})
            for tag, attrs in _shape(broker, "a:destinationPolicy")
        ]

    assert policies(ours) == policies(lake)
    for broker in (ours, lake):
        entries = [attrs for tag, attrs in _shape(broker, "a:destinationPolicy") if tag == "policyEntry"]
        assert entries and all(attrs.get("memoryLimit", "").endswith("mb") for attrs in entries)
    assert ours.get("persistent") == lake.get("persistent") == "true"
    auth = _shape(ours, "a:plugins")
    assert ("simpleAuthenticationPlugin", {"anonymousAccessAllowed": "false"}) in auth
    users = {attrs["groups"]: attrs for tag, attrs in auth if tag == "authenticationUser"}
    assert users["inlet"]["password"] == "${BROKER_PASSWORD}", "the passwords come from the environment"
    assert users["hermes"]["password"] == "${BROKER_HERMES_PASSWORD}"
    assert users["readers"]["password"] == "${BROKER_READER_PASSWORD}"
    lake_users = {attrs["groups"] for tag, attrs in _shape(lake, "a:plugins") if tag == "authenticationUser"}
    assert set(users) == lake_users
    # The same roles may do the same things as in the lake.
    assert _shape(ours, "a:plugins/a:authorizationPlugin") == _shape(lake, "a:plugins/a:authorizationPlugin")
    for attr in ("populateJMSXUserID", "useAuthenticatedPrincipalForJMSXUserID"):
        assert ours.get(attr) == lake.get(attr) == "true"
    connectors = {attrs["name"]: attrs["uri"] for tag, attrs in _shape(ours, "a:transportConnectors")[1:]}
    assert connectors["stomp"].startswith("stomp://0.0.0.0:61613")


def test_broker_port_and_topics_agree_with_inlet_and_hermes() -> None:
    env = environment(services()["rucio-init"])
    s = Settings()
    assert env["RUCIO_CFG_MESSAGING_HERMES_DESTINATION"] == s.broker.rucio_topic
    # hermes logs in with its own account, the one the broker lets publish Rucio's topic only.
    broker_env = environment(services()["activemq"])
    assert env["RUCIO_CFG_MESSAGING_HERMES_USERNAME"] == broker_env["BROKER_HERMES_USERNAME"] == "hermes"
    assert env["RUCIO_CFG_MESSAGING_HERMES_PASSWORD"] == broker_env["BROKER_HERMES_PASSWORD"]
    assert env["RUCIO_CFG_MESSAGING_HERMES_PASSWORD"] != broker_env["BROKER_PASSWORD"]
    assert environment(services()["listener"])["INLET_BROKER__STOMP_PORT"] == "61613"
    assert services()["activemq"]["ports"] == ["127.0.0.1:61613:61613"]


def test_the_bootstrap_feeds_the_topology_module_the_lakes_topology(tmp_path: Path) -> None:
    # Run the bootstrap's own producer (the python -c of bootstrap.sh) as the container would.
    import re

    from inlet.lake.topology import Topology, lake_topology

    script = (DOCKER / "inlet" / "bootstrap.sh").read_text()
    producer = re.search(r"python -c '(.*?)' \\\n\s*\| python -m inlet\.lake\.topology -", script, re.DOTALL)
    assert producer, "bootstrap.sh no longer pipes a topology into python -m inlet.lake.topology -"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INLET_")}
    env.update({k: v for k, v in environment(services()["bootstrap"]).items() if k.startswith(("INLET_", "RSE_"))})
    env["INLET_CONFIG"] = str(DOCKER / "config" / "inlet.toml")
    out = subprocess.run(
        [sys.executable, "-c", producer.group(1)], env=env, capture_output=True, text=True, check=True
    ).stdout
    topo = Topology.from_json(out)
    lake = lake_topology(str(tmp_path), "http://127.0.0.1:29000", "inlet-lake", Settings())
    assert [r.name for r in topo.rses] == [r.name for r in lake.rses]
    assert topo.distances == lake.distances and topo.scopes == lake.scopes
    s3 = next(r for r in topo.rses if r.name == "S3").protocols[0]
    assert (s3.scheme, s3.hostname, s3.port, s3.prefix) == ("http", "minio", 9000, "/inlet-lake/")
    for rse in topo.rses:
        if rse.protocols[0].scheme == "file":
            assert rse.protocols[0].prefix == f"/srv/rse/{rse.name}/"
    mounts = {v.split(":")[1] for v in services()["conveyor"]["volumes"]}
    assert env["RSE_ROOT"] in mounts, "the conveyor must see the POSIX RSEs where the topology puts them"
