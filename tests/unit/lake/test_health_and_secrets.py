"""The lake's health reading of daemon logs, and how it writes files holding secrets."""

from __future__ import annotations

import configparser
import stat
import time
from pathlib import Path

from inlet.config import Settings
from inlet.lake.lake import DEGRADED_FAILURES, recent_failures
from inlet.lake.rucio_cfg import MAIL_TEMPLATES, render_alembic_ini, render_rucio_cfg, write_mail_templates
from inlet.lake.services.base import LakePaths, write_private
from inlet.lake.services.daemons import DaemonGroup, daemon_args

NOW = time.time()


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + ",123"


def _rucio_failure(t: float) -> str:
    return (
        f"{_stamp(t)}\treaper\t42\tCRITICAL\t[0/1]: Exception\n"
        "Traceback (most recent call last):\n"
        '  File "reaper.py", line 1, in run_once\n'
        "    payload_cnt = list_payload_counts(...)\n"
        "TypeError: unsupported type for timedelta seconds component: NoneType\n"
    )


def test_repeated_tracebacks_count_with_the_last_error_line(tmp_path: Path) -> None:
    log = tmp_path / "rucio-reaper.log"
    text = "".join(
        f"{_stamp(NOW - 30 + i)}\treaper\t42\tINFO\t[0/1]: Reaper started\n" + _rucio_failure(NOW - 30 + i)
        for i in range(5)
    )
    log.write_text(text)
    failed = recent_failures(log, since=NOW - 60, now=NOW)
    assert failed.count == 5 >= DEGRADED_FAILURES
    assert failed.last_error == "TypeError: unsupported type for timedelta seconds component: NoneType"


def test_old_failures_and_those_of_an_earlier_process_do_not_count(tmp_path: Path) -> None:
    log = tmp_path / "rucio-reaper.log"
    log.write_text(_rucio_failure(NOW - 3600) * 3 + _rucio_failure(NOW - 50) * 3 + f"{_stamp(NOW)}\tr\t1\tINFO\tok\n")
    assert recent_failures(log, since=NOW - 40, now=NOW).count == 0  # restarted since
    assert recent_failures(log, since=NOW - 7200, now=NOW).count == 3  # the hour-old ones are out of the window


def test_inlet_daemon_format_and_plain_errors(tmp_path: Path) -> None:
    # `inlet daemon` logs "<asctime> LEVEL name message"; a transfer error without traceback is no failed pass.
    log = tmp_path / "rucio-conveyor.log"
    lines = [f"{_stamp(NOW - 5)} ERROR rucio_inlet.transfertool copy failed: SOURCE CHECKSUM MISMATCH\n"] * 4
    lines += [
        f"{_stamp(NOW - 2)} CRITICAL conveyor-finisher [0/1]: Exception\nTraceback (most recent call last):\n"
        '  File "x", line 1\nRuntimeError: database gone\n'
    ]
    log.write_text("".join(lines))
    failed = recent_failures(log, since=NOW - 60, now=NOW)
    assert failed.count == 1 and failed.last_error == "RuntimeError: database gone"


def test_missing_log_is_no_failure(tmp_path: Path) -> None:
    assert recent_failures(tmp_path / "none.log", since=0, now=NOW).count == 0


def test_write_private_is_0600_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "secret.cfg"
    path.parent.mkdir()
    path.write_text("old, world-readable")
    path.chmod(0o644)
    write_private(path, "password = x\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "password = x\n"
    assert [p.name for p in path.parent.iterdir()] == ["secret.cfg"]


def test_rucio_cfg_names_mail_templates_that_exist(tmp_path: Path) -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(render_rucio_cfg(Settings(), LakePaths(tmp_path), "postgresql+psycopg://rucio:pw@h:1/rucio"))
    folder = Path(cfg["common"]["mailtemplatedir"])
    if not folder.is_dir():  # a Rucio without its data files: the lake writes its own
        write_mail_templates(folder)
    assert all((folder / name).is_file() for name in MAIL_TEMPLATES)


def test_minimal_mail_templates(tmp_path: Path) -> None:
    write_mail_templates(tmp_path / "mt")
    assert "$rule_id" in (tmp_path / "mt" / "rule_approval_request.tmpl").read_text()


def test_percent_in_a_password_survives_rucios_interpolation(tmp_path: Path) -> None:
    # Rucio and alembic read these files with %-interpolation; quote() turns "%" into "%25".
    url = "postgresql+psycopg://rucio:p%25w@h:1/rucio"
    s = Settings(rucio={"password": "pa%ss"})  # type: ignore[arg-type]
    for text, section, option, want in (
        (render_rucio_cfg(s, LakePaths(tmp_path), url), "client", "password", "pa%ss"),
        (render_rucio_cfg(s, LakePaths(tmp_path), url), "database", "default", url),
        (render_alembic_ini(LakePaths(tmp_path), url), "alembic", "sqlalchemy.url", url),
    ):
        cfg = configparser.ConfigParser()  # interpolating, as Rucio's and alembic's
        cfg.read_string(text)
        assert cfg.get(section, option) == want


def test_the_reaper_sleeps_long_enough_for_rucios_heartbeats(tmp_path: Path) -> None:
    s = Settings(lake={"state_dir": tmp_path, "daemon_sleep": 1})  # type: ignore[arg-type]
    argv = daemon_args("reaper", s)
    assert int(argv[argv.index("--sleep-time") + 1]) >= 2
    group = DaemonGroup(s, LakePaths(tmp_path)).argv()
    assert "reaper --sleep-time 2 --chunk-size 100" in group
