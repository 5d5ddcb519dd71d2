"""The images' entry scripts, run here on this venv: they write rucio.cfg, then run the command."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.unit.docker.deployment import DOCKER, environment, services

INLET_ENTRY = DOCKER / "inlet" / "entrypoint.sh"
RUCIO_START = DOCKER / "rucio" / "start.sh"


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


def _start_env(tmp_path: Path, service: str) -> dict[str, str]:
    env = {**_base_env(), **_rucio_vars(service)}
    env.update(START_VENV=sys.prefix, START_SITE_CFG=str(tmp_path / "none.cfg"), START_STATE_DIR=str(tmp_path))
    return env


def test_rucio_start_merges_the_configuration_and_exports_it(tmp_path: Path) -> None:
    env = _start_env(tmp_path, "rucio-server")
    res = _run(["sh", str(RUCIO_START), "sh", "-c", 'printf %s "$RUCIO_CONFIG"'], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == str(tmp_path / "rucio" / "rucio.cfg")
    cfg = _read(tmp_path / "rucio" / "rucio.cfg")
    assert stat.S_IMODE((tmp_path / "rucio" / "rucio.cfg").stat().st_mode) == 0o600
    assert cfg.get("policy", "package") == "rucio_inlet"
    assert cfg.get("messaging-hermes", "brokers") == "activemq"


def test_rucio_start_prints_the_configuration_without_secrets(tmp_path: Path) -> None:
    env = {**_start_env(tmp_path, "hermes"), "RUCIO_PRINT_CFG": "1"}
    res = _run(["sh", str(RUCIO_START), "true"], env)
    assert res.returncode == 0, res.stderr
    assert "[messaging-hermes]" in res.stdout
    for key in ("RUCIO_CFG_CLIENT_PASSWORD", "RUCIO_CFG_MESSAGING_HERMES_PASSWORD", "RUCIO_CFG_DATABASE_DEFAULT"):
        assert env[key] not in res.stdout, f"{key} printed in the log"


def test_rucio_start_prefers_a_mounted_site_cfg(tmp_path: Path) -> None:
    site = tmp_path / "rucio.cfg"
    site.write_text("[common]\nloglevel = INFO\n")
    env = {**_start_env(tmp_path, "rucio-server"), "START_SITE_CFG": str(site)}
    res = _run(["sh", str(RUCIO_START), "sh", "-c", 'printf %s "$RUCIO_CONFIG"'], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == str(site)
    assert not (tmp_path / "rucio").exists(), "nothing generated when the site mounts its own"


def test_rucio_start_daemon_needs_a_daemon_name(tmp_path: Path) -> None:
    env = _start_env(tmp_path, "rucio-server")
    res = _run(["sh", str(RUCIO_START), "daemon"], env)
    assert res.returncode == 2
    assert "RUCIO_DAEMON" in res.stderr
