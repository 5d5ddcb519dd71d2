"""`inlet follow` in-process on a SQLite catalogue (no broker: it follows by polling then)."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.catalog import open_catalog
from inlet.catalog.runs import add_file, mark_available, upsert_run
from inlet.cli.main import app

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_exec_stops_before_the_file_with_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("INLET_CATALOG__URL", url)
    monkeypatch.setenv("INLET_BROKER__STOMP_PORT", str(closed_port()))
    monkeypatch.setenv("INLET_LAKE__STATE_DIR", str(tmp_path / "state"))
    cat = open_catalog(url)
    with cat.session() as s:
        run = upsert_run(s, "kloe", 1, scope="kloe.raw")
        add_file(s, run, "kloe.raw", "run1.f0", 10)
        mark_available(s, "kloe.raw", "run1.f0", "S3", T0)
    cat.dispose()
    res = CliRunner().invoke(app, ["follow", "raw: run = 1", "--from-start", "--exec", "false {did}"])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("inlet: error: --exec failed for kloe.raw:run1.f0 (exit 1)")
    assert "run1.f0\t" not in res.output  # not printed: it was not finished
