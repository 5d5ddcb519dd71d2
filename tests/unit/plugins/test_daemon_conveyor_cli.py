"""`inlet daemon conveyor`: bad options and configurations are one-line errors with the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from inlet.cli.main import app


def test_daemon_conveyor_with_a_missing_rucio_config_names_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "rucio.cfg"
    res = CliRunner().invoke(app, ["daemon", "conveyor", "--once"], env={"RUCIO_CONFIG": str(missing)})
    assert res.exit_code == 2
    assert str(missing) in res.output and "does not exist" in res.output
    assert "inlet lake up" in res.output


def test_daemon_conveyor_rejects_a_zero_sleep() -> None:
    res = CliRunner().invoke(app, ["daemon", "conveyor", "--poller-sleep", "0"])
    assert res.exit_code == 2
    assert "poller-sleep" in res.output


def test_daemon_conveyor_refuses_a_rucio_cfg_that_selects_another_transfertool(tmp_path: Path) -> None:
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text(
        f"[common]\nloglevel = WARNING\n[database]\ndefault = sqlite:///{tmp_path / 'x.db'}\n"
        "[conveyor]\ntransfertool = fts3\n"
    )
    env = {**os.environ, "RUCIO_CONFIG": str(cfg)}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "inlet"), "daemon", "conveyor", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "transfertool is fts3" in res.stderr and "transfertool = gfal2" in res.stderr
