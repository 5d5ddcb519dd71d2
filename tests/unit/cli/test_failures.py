"""The CLI's one error handler: how each kind of failure becomes one line, and what a bug shows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import redis
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from inlet.cli import runs_cmd
from inlet.cli.failures import explain, mask, one_line, render
from inlet.cli.main import app
from inlet.config import Settings
from inlet.errors import InletError
from inlet.lake.errors import LakeError


def test_inlet_error_keeps_problem_and_fix_apart() -> None:
    err = InletError("the thing is broken", "mend it")
    assert (err.problem, err.fix, err.exit_code) == ("the thing is broken", "mend it", 2)
    assert str(err) == "the thing is broken\n  fix: mend it"
    assert str(InletError("only a problem")) == "only a problem"
    assert isinstance(LakeError("p", "f"), InletError)


def test_render_is_one_line_and_masks_url_passwords() -> None:
    line = render("cannot open\n  mysql+pymysql://inlet:hunter2@db/x:\n  refused.", "check it")
    assert line == "inlet: error: cannot open; mysql+pymysql://inlet:***@db/x: refused (fix: check it)"
    assert mask("redis://:pw@127.0.0.1:6379/0 and http://h/p") == "redis://:***@127.0.0.1:6379/0 and http://h/p"
    assert "\n" not in render("x" * 5000, "y") and len(render("x" * 5000, "y")) < 600
    assert one_line("a:\n  b\n\n  c") == "a: b; c"


def test_unknown_setting_names_key_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "inlet.toml"
    cfg.write_text("[broker]\nhots = 'x'\n")
    monkeypatch.setenv("INLET_CONFIG", str(cfg))
    with pytest.raises(ValidationError) as err:
        Settings()
    explained = explain(err.value)
    assert explained is not None
    problem, fix, code = explained
    assert problem == f"unknown configuration key broker.hots (in {cfg})"
    assert "inlet config doc" in fix and code == 2


def test_bad_setting_from_env_names_the_variable_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INLET_BROKER__STOMP_PORT", "sixty-one")
    with pytest.raises(ValidationError) as err:
        Settings()
    explained = explain(err.value)
    assert explained is not None
    assert "broker.stomp_port (from the environment variable INLET_BROKER__STOMP_PORT)" in explained[0]
    assert "'sixty-one'" in explained[0]

    class Other(BaseModel):
        n: int

    with pytest.raises(ValidationError) as other:
        Other(n="x")  # type: ignore[arg-type]
    assert explain(other.value) is not None  # not a setting, still one line


def test_outside_world_errors_are_explained() -> None:
    cases: list[tuple[BaseException, str]] = [
        (redis.ConnectionError("Error 111 connecting to 127.0.0.1:1."), "cannot reach Redis"),
        (OperationalError("SELECT 1", {}, Exception("(2003, refused)")), "(2003, refused)"),
        (ConnectionRefusedError(111, "Connection refused"), "cannot connect"),
        (FileNotFoundError(2, "No such file or directory", "/x"), "No such file or directory: /x"),
        (tomllib.TOMLDecodeError("Expected '='"), "is not valid TOML"),
    ]
    for exc, says in cases:
        explained = explain(exc)
        assert explained is not None, exc
        assert says in explained[0] and explained[1] and explained[2] == 2, explained
    assert explain(ZeroDivisionError("x")) is None  # a bug is not explained away


def test_a_bug_is_one_line_pointing_at_its_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INLET_CATALOG__URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR

    def broken(*_args: object, **_kw: object) -> None:
        raise ZeroDivisionError("the bug")

    monkeypatch.setattr(runs_cmd, "list_runs", broken)
    res = CliRunner().invoke(app, ["runs"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inlet: error: unexpected ZeroDivisionError: the bug")
    saved = re.search(r"the traceback is in (\S+);", lines[0])
    assert saved is not None
    text = Path(saved.group(1)).read_text()
    assert "Traceback" in text and "ZeroDivisionError: the bug" in text and "list_runs" not in lines[0]

    res = CliRunner().invoke(app, ["--debug", "runs"])
    assert isinstance(res.exception, ZeroDivisionError)  # --debug lets the traceback through
    monkeypatch.setenv("INLET_DEBUG", "1")
    res = CliRunner().invoke(app, ["runs"])
    assert isinstance(res.exception, ZeroDivisionError)


def test_usage_errors_are_one_line_and_group_help_still_shows() -> None:
    res = CliRunner().invoke(app, ["runs", "--no-such-option"])
    assert res.exit_code == 2
    assert res.stderr.strip() == "inlet: error: No such option: --no-such-option (fix: see `inlet runs -h`)"
    res = CliRunner().invoke(app, ["lake"])  # a group without a command: its help, as before
    assert "Usage:" in res.output and "up" in res.output
