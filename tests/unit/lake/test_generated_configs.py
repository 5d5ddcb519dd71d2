from __future__ import annotations

import configparser
from pathlib import Path

from inlet.config import Settings
from inlet.lake.rucio_cfg import render_alembic_ini, render_rucio_cfg
from inlet.lake.services.activemq import ActiveMQ
from inlet.lake.services.base import LakePaths
from inlet.lake.topology import Topology, lake_topology


def _parse(text: str) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(text)
    return cfg


def test_rucio_cfg_for_server_daemons_and_client(tmp_path: Path) -> None:
    s = Settings(lake={"state_dir": tmp_path})  # type: ignore[arg-type]
    cfg = _parse(render_rucio_cfg(s, LakePaths(tmp_path), "postgresql+psycopg://rucio@127.0.0.1:1/rucio"))
    # Rucio's create_root_account() does bool("False") == True: the key must be absent.
    assert not cfg.has_option("common", "multi_vo")
    assert cfg["bootstrap"]["ssh_identity"] == "" and cfg["bootstrap"]["x509_identity"] == ""
    assert cfg["client"]["rucio_host"] == s.rucio.host
    assert cfg["client"]["auth_token_file_path"].startswith(str(tmp_path))
    assert cfg["messaging-hermes"]["port"] == str(s.broker.stomp_port)
    assert cfg["hermes"]["services_list"] == "activemq"


def test_alembic_ini_has_absolute_script_location_and_logging(tmp_path: Path) -> None:
    cfg = _parse(render_alembic_ini(LakePaths(tmp_path), "sqlite://"))
    loc = Path(cfg["alembic"]["script_location"])
    assert loc.is_absolute() and (loc / "env.py").is_file()
    assert cfg.has_section("formatters")  # Rucio's env.py runs fileConfig() on it


def test_activemq_xml_is_persistent_with_stomp(tmp_path: Path) -> None:
    s = Settings(lake={"state_dir": tmp_path})  # type: ignore[arg-type]
    svc = ActiveMQ(s, LakePaths(tmp_path))
    svc.prepare()
    xml = (svc.base / "conf" / "activemq.xml").read_text()
    assert 'persistent="true"' in xml
    assert f"stomp://127.0.0.1:{s.broker.stomp_port}" in xml
    assert "kahaDB" in xml


def test_topology_json_round_trip() -> None:
    topo = lake_topology("/data", "http://127.0.0.1:29000", "bucket")
    assert {r.name for r in topo.rses} == {"SITE_A_DISK", "S3", "TAPE", "SITE_B_DISK"}
    assert {r.name: r.rse_type for r in topo.rses}["TAPE"] == "TAPE"
    again = Topology.from_json(topo.to_json())
    assert again == topo


def test_rucio_cfg_points_rucios_cache_at_the_lakes_memcached_only_when_it_runs_one(tmp_path: Path) -> None:
    url = "postgresql+psycopg://rucio@127.0.0.1:1/rucio"
    s = Settings(lake={"state_dir": tmp_path, "memcached_port": 31211})  # type: ignore[arg-type]
    assert _parse(render_rucio_cfg(s, LakePaths(tmp_path), url))["cache"]["url"] == "127.0.0.1:31211"
    manage = [m for m in s.lake.manage if m != "memcached"]
    s = Settings(lake={"state_dir": tmp_path, "manage": manage})  # type: ignore[arg-type]
    assert not _parse(render_rucio_cfg(s, LakePaths(tmp_path), url)).has_section("cache")
