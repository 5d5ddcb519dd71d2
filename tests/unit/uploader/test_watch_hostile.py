"""The closed-file detector facing a hostile DAQ directory: bad files refused one by one, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inlet.uploader.roots import DaqRoots
from inlet.uploader.watch import ClosedFileDetector

BAD_SIDECARS = {
    "run-abc": '{"run": "abc"}',
    "size-abc": '{"size": "abc"}',
    "run-out-of-range": '{"run": 10000000}',
    "wrong-type": '{"adler32": 1234}',
    "not-json": "this is not json",
    "huge-number": '{"run": ' + "9" * 5000 + "}",
    "nested-garbage": '{"run": ' + "[" * 50_000 + "]" * 50_000 + "}",
}


class Refusals:
    def __init__(self) -> None:
        self.got: dict[str, tuple[str, str, tuple[Path, ...]]] = {}

    def __call__(self, path: Path, reason: str, kind: str, companions: tuple[Path, ...]) -> None:
        self.got[path.name] = (reason, kind, companions)


def _file(d: Path, n: int, sidecar: str | None) -> Path:
    f = d / f"run000042_pmt_{n:04d}.mid.gz"
    f.write_bytes(b"data %d" % n)
    if sidecar is not None:
        (d / f"{f.name}.json").write_text(sidecar)
    return f


def test_every_bad_sidecar_refuses_its_file_and_the_good_ones_go_on(tmp_path: Path) -> None:
    bad = {name: _file(tmp_path, i, text) for i, (name, text) in enumerate(BAD_SIDECARS.items(), start=1)}
    good = _file(tmp_path, 99, json.dumps({"run": 42, "size": 7}))
    refusals = Refusals()
    det = ClosedFileDetector(tmp_path, stable_seconds=0, on_refused=refusals)
    (c,) = det.scan(now=0)
    assert (c.path, c.run, c.sidecar) == (good, 42, {"run": 42, "size": 7})
    assert set(refusals.got) == {f.name for f in bad.values()}
    for name, f in bad.items():
        reason, kind, companions = refusals.got[f.name]
        assert kind == "bad-sidecar", name
        assert "bad sidecar" in reason and "\n" not in reason, name
        assert companions == (f.with_name(f.name + ".json"),)
    assert det.scan(now=1) == [] and len(refusals.got) == len(bad)  # each refused once


def test_a_sidecar_that_is_a_symlink_or_a_directory_refuses_its_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"run": 42}')
    daq = tmp_path / "daq"
    daq.mkdir()
    linked = _file(daq, 1, None)
    (daq / f"{linked.name}.json").symlink_to(elsewhere)
    dirred = _file(daq, 2, None)
    (daq / f"{dirred.name}.json").mkdir()
    refusals = Refusals()
    assert ClosedFileDetector(daq, stable_seconds=0, on_refused=refusals).scan(now=0) == []
    assert "symlink" in refusals.got[linked.name][0]
    assert "directory" in refusals.got[dirred.name][0]


def test_a_bad_sidecar_is_refused_only_once_it_stayed_unchanged(tmp_path: Path) -> None:
    f = _file(tmp_path, 1, '{"run": 4')  # the DAQ is still writing it
    refusals = Refusals()
    det = ClosedFileDetector(tmp_path, stable_seconds=5, on_refused=refusals)
    assert det.scan(now=100) == [] and not refusals.got
    (tmp_path / f"{f.name}.json").write_text('{"run": 42}')  # now complete
    (c,) = det.scan(now=101)
    assert c.run == 42 and not refusals.got
    g = _file(tmp_path, 2, '{"run": "abc"}')
    assert det.scan(now=200) == []
    assert det.scan(now=204) == [] and not refusals.got
    det.scan(now=206)
    assert refusals.got[g.name][1] == "bad-sidecar"


def test_symlinks_leaving_the_roots_and_special_files_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"private")
    secret.chmod(0o600)
    daq = tmp_path / "daq"
    daq.mkdir()
    (daq / "run000042_pmt_0001.mid.gz").symlink_to(secret)
    os.mkfifo(daq / "run000042_pmt_0002.mid.gz")
    (daq / "subdir").mkdir()
    inside = _file(daq, 3, None)
    (daq / "run000042_pmt_0004.mid.gz").symlink_to(inside)
    refusals = Refusals()
    got = ClosedFileDetector(daq, stable_seconds=0, on_refused=refusals).scan(now=0)
    assert sorted(c.path.name for c in got) == ["run000042_pmt_0003.mid.gz", "run000042_pmt_0004.mid.gz"]
    assert refusals.got["run000042_pmt_0001.mid.gz"][1] == "outside-roots"
    assert refusals.got["run000042_pmt_0002.mid.gz"][1] == "not-regular"
    assert "subdir" not in refusals.got


def test_a_run_number_too_long_in_the_name_is_refused(tmp_path: Path) -> None:
    f = tmp_path / ("run" + "9" * 5000 + ".mid.gz")[:200]
    f.write_bytes(b"x")
    refusals = Refusals()
    assert ClosedFileDetector(tmp_path, stable_seconds=0, on_refused=refusals).scan(now=0) == []
    assert refusals.got[f.name][1] == "bad-name"


def test_a_failing_refusal_hook_does_not_stop_the_scan(tmp_path: Path) -> None:
    _file(tmp_path, 1, '{"run": "abc"}')
    good = _file(tmp_path, 2, '{"run": 42}')

    def broken(*_: object) -> None:
        raise RuntimeError("the broker is away")

    (c,) = ClosedFileDetector(tmp_path, stable_seconds=0, on_refused=broken).scan(now=0)
    assert c.path == good


def test_the_roots_given_win_over_the_directory(tmp_path: Path) -> None:
    daq = tmp_path / "daq"
    daq.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    _file(daq, 1, '{"run": 42}')
    refusals = Refusals()
    det = ClosedFileDetector(daq, stable_seconds=0, roots=DaqRoots([other]), on_refused=refusals)
    assert det.scan(now=0) == []
    assert refusals.got["run000042_pmt_0001.mid.gz"][1] == "outside-roots"


@pytest.mark.parametrize("name", ["run000042.mid.gz"])
def test_a_file_vanishing_mid_scan_is_skipped(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_bytes(b"x")
    det = ClosedFileDetector(tmp_path, stable_seconds=0)
    f.unlink()
    assert det.scan(now=0) == []
