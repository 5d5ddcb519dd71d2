"""The corruption drill, the rehearsal's stream policy, and the CLI's refusal of bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rucio_inlet.checksums import file_adler32
from typer.testing import CliRunner

from inlet.cli.main import app
from inlet.config import Settings, StreamPolicy, UploaderSettings
from inlet.rehearse.downloaders import Drill
from inlet.rehearse.runner import Rehearsal, RehearsalPlan


def test_the_drill_flips_one_byte_once_and_only_of_drilled_chunks(tmp_path: Path) -> None:
    f = tmp_path / "a.gwf"
    other = tmp_path / "b.gwf"
    f.write_bytes(bytes(range(256)) * 4)
    other.write_bytes(bytes(range(256)) * 4)
    before = file_adler32(f)
    drill = Drill({"a.gwf"})
    drill.before_fetch("a.gwf", f"file://localhost{f}")
    after = file_adler32(f)
    assert after != before
    drill.before_fetch("a.gwf", f"file://localhost{f}")  # the second downloader: no second flip
    assert file_adler32(f) == after
    drill.before_fetch("b.gwf", f"file://localhost{other}")
    assert file_adler32(other) == before


def test_the_drill_refuses_a_replica_it_cannot_reach() -> None:
    with pytest.raises(RuntimeError, match="needs a POSIX replica"):
        Drill({"a.gwf"}).before_fetch("a.gwf", "http://127.0.0.1:29000/bucket/a.gwf")


def test_the_rehearsal_stream_is_a_valid_policy_with_per_file_rules_to_site_b(tmp_path: Path) -> None:
    r = Rehearsal(Settings(), RehearsalPlan(chunks=3, extra_rses=["S3", "SITE_B_DISK"]), tmp_path)
    policy = StreamPolicy.model_validate(r.stream_policy())
    targets = [(x.rse_expression, x.per_file, x.notify) for x in policy.rules]
    assert targets == [("SITE_A_DISK", False, "N"), ("SITE_B_DISK", True, "Y"), ("S3", True, "Y")]
    assert policy.release is False
    assert policy.rules[0].grouping == "auto"


def test_the_rehearsal_runs_on_a_queue_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = Rehearsal(Settings(), RehearsalPlan(chunks=3), tmp_path)
    for key in (
        "INLET_UPLOADER__QUEUE",
        "INLET_UPLOADER__STREAMS",
        "INLET_UPLOADER__STATE_DIR",
        "INLET_UPLOADER__QUARANTINE_DIR",
    ):
        monkeypatch.setenv(key, "")  # so that monkeypatch removes what prepare_env sets
    default_queue = UploaderSettings().queue
    env = r.prepare_env()
    assert env["INLET_UPLOADER__QUEUE"].startswith("inlet.rehearse.")
    assert env["INLET_UPLOADER__QUEUE"] != default_queue
    assert set(json.loads(env["INLET_UPLOADER__STREAMS"])) == {"rehearse"}
    assert Settings().uploader.queue == env["INLET_UPLOADER__QUEUE"]  # this process's uploader sees it too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "10", "--corrupt", "12"], "chunk indexes go from 0 to 9"),
        (["--duration", "1", "--rate", "0.5"], "at least one chunk"),
    ],
)
def test_bad_options_exit_2_before_anything_starts(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["rehearse", "--no-lake", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", " ")
