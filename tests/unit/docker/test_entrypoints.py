"""inlet's entry script, run here on this venv: it writes rucio.cfg, then runs the command.

The Rucio images keep the official entry scripts (tests/unit/docker/test_rucio_images.py)."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.unit.docker.deployment import DOCKER, environment, services

INLET_ENTRY = DOCKER / "inlet" / "entrypoint.sh"


def _base_env() -> dict[str, str]:
    # The venv's python first, as /opt/venv/bin is in the image; nothing of the caller's RUCIO_/INLET_.
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {"PATH": path, "VIRTUAL_ENV": sys.prefix, "HOME": os.environ.get("HOME", "/tmp")}


def _rucio_vars(service: str) -> dict[str, str]:
    return {k: v for k, v in environment(services()[service]).items() if k.startswith("RUCIO_")}


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)


def _read(path: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    assert cfg.read(path) == [str(path)]
    return cfg


def test_inlet_entrypoint_writes_rucio_cfg_and_alembic_ini_then_runs_the_command(tmp_path: Path) -> None:
    env = {**_base_env(), **_rucio_vars("rucio-init")}
    env["RUCIO_CONFIG"] = str(tmp_path / "rucio" / "rucio.cfg")
    env["RUCIO_CFG_ALEMBIC_CFG"] = str(tmp_path / "rucio" / "alembic.ini")
    res = _run(["sh", str(INLET_ENTRY), "sh", "-c", 'echo "ran with $RUCIO_CONFIG"'], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"ran with {env['RUCIO_CONFIG']}"
    cfg_path = Path(env["RUCIO_CONFIG"])
    assert stat.S_IMODE(cfg_path.stat().st_mode) == 0o600, "rucio.cfg holds passwords"
    cfg = _read(cfg_path)
    assert cfg.get("database", "default") == env["RUCIO_CFG_DATABASE_DEFAULT"]
    assert cfg.get("policy", "package") == "rucio_inlet"
    ini = _read(Path(env["RUCIO_CFG_ALEMBIC_CFG"]))
    assert ini.get("alembic", "sqlalchemy.url") == env["RUCIO_CFG_DATABASE_DEFAULT"]
    assert Path(ini.get("alembic", "script_location")).is_dir(), "alembic needs Rucio's migrate_repo"


def test_inlet_entrypoint_uses_a_site_rucio_cfg_as_it_is(tmp_path: Path) -> None:
    site = tmp_path / "site.cfg"
    site.write_text("[client]\nrucio_host = https://rucio.example.org\n")
    env = {**_base_env(), "RUCIO_CONFIG": str(site)}
    res = _run(["sh", str(INLET_ENTRY), "true"], env)
    assert res.returncode == 0, res.stderr
    assert site.read_text() == "[client]\nrucio_host = https://rucio.example.org\n"


def test_inlet_entrypoint_without_any_rucio_configuration_names_the_fix(tmp_path: Path) -> None:
    env = {**_base_env(), "RUCIO_CONFIG": str(tmp_path / "missing.cfg")}
    res = _run(["sh", str(INLET_ENTRY), "true"], env)
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "fix:" in res.stderr


def test_inlet_entrypoint_merges_the_charts_conf_d_then_the_variables(tmp_path: Path) -> None:
    # Kubernetes: the Rucio charts' config Secret mounted as conf.d JSON (RUCIO_OVERRIDE_CONFIGS),
    # the passwords as RUCIO_CFG_* from a Secret; the variables win, as in the official images.
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10_common.json").write_text(
        '{"policy": {"package": "site_policy"}, "database": {"default": "sqlite:////nowhere"},'
        ' "messaging-hermes": {"brokers": "broker.example.org"}}'
    )
    env = {**_base_env(), "RUCIO_CONFIG": str(tmp_path / "rucio" / "rucio.cfg")}
    env["RUCIO_OVERRIDE_CONFIGS"] = f"{conf_d}/"
    env["RUCIO_CFG_DATABASE_DEFAULT"] = "postgresql+psycopg://rucio:pw@db/rucio"
    res = _run(["sh", str(INLET_ENTRY), "true"], env)
    assert res.returncode == 0, res.stderr
    cfg = _read(Path(env["RUCIO_CONFIG"]))
    assert cfg.get("policy", "package") == "site_policy"
    assert cfg.get("messaging-hermes", "brokers") == "broker.example.org"
    assert cfg.get("database", "default") == env["RUCIO_CFG_DATABASE_DEFAULT"]
