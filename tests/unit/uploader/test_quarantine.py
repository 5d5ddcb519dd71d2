"""Quarantine moves only regular files inside the DAQ roots; everything else stays, with a reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inlet.uploader.quarantine import quarantine_info
from inlet.uploader.roots import DaqRoots


@pytest.fixture
def daq(tmp_path: Path) -> Path:
    d = tmp_path / "daq"
    d.mkdir()
    return d


def reason(qdir: Path, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((qdir / f"{name}.reason.json").read_text())
    return doc


def test_a_regular_file_is_moved_with_its_reason(daq: Path, tmp_path: Path) -> None:
    f = daq / "bad.dat"
    f.write_bytes(b"bad")
    qdir = tmp_path / "q"
    info = quarantine_info(f, qdir, "bad name", "bad-name", DaqRoots([daq]))
    assert not f.exists() and (qdir / "bad.dat").read_bytes() == b"bad"
    assert info["moved_to"] == str(qdir / "bad.dat")
    assert reason(qdir, "bad.dat")["reason"] == "bad name"
    assert (qdir / "bad.dat.reason.json").stat().st_mode & 0o777 == 0o600
    assert qdir.stat().st_mode & 0o777 == 0o700


def test_dir_sub_dotdot_never_moves_the_directory(daq: Path, tmp_path: Path) -> None:
    (daq / "sub").mkdir()
    (daq / "keep.dat").write_bytes(b"keep")
    qdir = tmp_path / "q"
    info = quarantine_info(f"{daq}/sub/..", qdir, "forged", "bad-name", DaqRoots([tmp_path]))
    assert info["moved_to"] is None and "directory" in str(info["left_in_place"])
    assert (daq / "keep.dat").read_bytes() == b"keep" and (daq / "sub").is_dir()
    assert info["source"] == str(daq)
    assert reason(qdir, "daq")["moved_to"] is None


def test_a_file_outside_the_roots_is_never_moved(tmp_path: Path, daq: Path) -> None:
    outside = tmp_path / "outside.dat"
    outside.write_bytes(b"not yours")
    info = quarantine_info(outside, tmp_path / "q", "forged", "outside-roots", DaqRoots([daq]))
    assert info["moved_to"] is None and outside.read_bytes() == b"not yours"


def test_a_symlink_is_left_in_place_and_its_target_untouched(daq: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s")
    (daq / "link").symlink_to(secret)
    info = quarantine_info(daq / "link", tmp_path / "q", "x", "outside-roots", DaqRoots([daq]))
    assert info["moved_to"] is None and (daq / "link").is_symlink() and secret.read_bytes() == b"s"


def test_a_fifo_is_left_in_place(daq: Path, tmp_path: Path) -> None:
    os.mkfifo(daq / "fifo")
    info = quarantine_info(daq / "fifo", tmp_path / "q", "x", "not-regular", DaqRoots([daq]))
    assert info["moved_to"] is None and (daq / "fifo").exists()


def test_a_file_reached_through_a_symlinked_directory_is_not_moved(daq: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f.dat").write_bytes(b"e")
    (daq / "sub").symlink_to(elsewhere)
    info = quarantine_info(daq / "sub" / "f.dat", tmp_path / "q", "x", "bad-name", DaqRoots([daq]))
    assert info["moved_to"] is None and (elsewhere / "f.dat").exists()


def test_names_never_clash_and_the_sidecar_follows(daq: Path, tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    for n in range(2):
        f = daq / "run000001.mid.gz"
        f.write_bytes(b"%d" % n)
        side = daq / "run000001.mid.gz.json"
        side.write_text('{"run": "abc"}')
        quarantine_info(f, qdir, "bad sidecar", "bad-sidecar", DaqRoots([daq]), (side,))
        assert not side.exists()
    assert (qdir / "run000001.mid.gz").read_bytes() == b"0"
    assert (qdir / "run000001.mid.gz.1").read_bytes() == b"1"
    assert (qdir / "run000001.mid.gz.json").exists() and (qdir / "run000001.mid.gz.1.json").exists()
    assert reason(qdir, "run000001.mid.gz.1")["companions"] == [str(qdir / "run000001.mid.gz.1.json")]


def test_a_quarantine_on_another_file_system_copies_then_removes(
    daq: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def cross_device(*_: object, **__: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    f = daq / "bad.dat"
    f.write_bytes(b"bytes")
    info = quarantine_info(f, tmp_path / "q", "x", "bad-name", DaqRoots([daq]))
    assert info["moved_to"] and Path(str(info["moved_to"])).read_bytes() == b"bytes" and not f.exists()
