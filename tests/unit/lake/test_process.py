from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from inlet.lake.ports import wait_until
from inlet.lake.process import ManagedProcess


def test_start_status_stop_round_trip(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "logs")
    pid = proc.start([sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(60)"])
    assert proc.is_running()
    assert proc.record() is not None and proc.record().pid == pid  # type: ignore[union-attr]
    assert wait_until(lambda: "hello" in proc.log_tail(), timeout=10), "output goes to the service log"
    assert proc.stop(timeout=5) is True
    assert not proc.is_running() and not proc.pid_path.exists()


def test_pid_with_other_start_time_is_not_ours(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        proc = ManagedProcess("x", tmp_path, tmp_path)
        proc.pid_path.write_text(json.dumps({"pid": stranger.pid, "create_time": 1.0, "argv": []}))
        assert proc.is_stale()
        assert proc.stop() is False
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_garbage_pid_file_counts_as_stale(tmp_path: Path) -> None:
    proc = ManagedProcess("x", tmp_path, tmp_path)
    proc.pid_path.write_text("{not json")
    assert proc.clear_stale() is True
    assert not proc.pid_path.exists()
