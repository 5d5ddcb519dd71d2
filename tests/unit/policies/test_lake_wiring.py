"""The lake loads the policy package by default, hands it the naming rules, and can go back to
Rucio's generic policy."""

from __future__ import annotations

import configparser
from pathlib import Path

from rucio_inlet.naming import read_naming_file

from inlet.config import Settings
from inlet.lake.rucio_cfg import naming_file, render_naming, render_rucio_cfg
from inlet.lake.services.base import LakePaths
from inlet.lake.topology import lake_topology

DB = "postgresql+psycopg://rucio@127.0.0.1:1/rucio"


def _policy(s: Settings, tmp_path: Path) -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(render_rucio_cfg(s, LakePaths(tmp_path), DB))
    return cfg["policy"]


def test_default_lake_loads_inlet_policies(tmp_path: Path) -> None:
    s = Settings(lake={"state_dir": tmp_path})  # type: ignore[arg-type]
    policy = _policy(s, tmp_path)
    assert policy["package"] == "rucio_inlet"
    assert policy["inlet_naming_file"] == str(naming_file(LakePaths(tmp_path)))
    path = naming_file(LakePaths(tmp_path))
    path.parent.mkdir(parents=True)
    path.write_text(render_naming(s))
    assert read_naming_file(path) == s.naming
    topo = lake_topology(str(tmp_path), s.s3.endpoint, s.s3.bucket, s)
    assert all(r.attributes["lfn2pfn_algorithm"] == "inlet_run" for r in topo.rses)
    assert {"test", "user.root", "cygno.raw", "cygno.reco", "kloe.raw", "kloe.reco"} <= set(topo.scopes)


def test_generic_policy_on_request(tmp_path: Path) -> None:
    s = Settings(lake={"state_dir": tmp_path}, policy={"package": ""})  # type: ignore[arg-type]
    policy = _policy(s, tmp_path)
    assert "package" not in policy and policy["permission"] == "generic" and policy["schema"] == "generic"
    topo = lake_topology(str(tmp_path), s.s3.endpoint, s.s3.bucket, s)
    assert all("lfn2pfn_algorithm" not in r.attributes for r in topo.rses)  # Rucio's hash stays
