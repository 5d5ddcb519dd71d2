"""Checksumming copy to a POSIX RSE: one pass, never overwrite, refuse a file that changes."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from inlet.uploader import storage
from inlet.uploader.digest import CHUNK, Digest, digest_file, digest_stream
from inlet.uploader.storage import AlreadyStoredDifferently, ChecksumMismatch, FileChanged, put_posix


def _src(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "daq" / "run000001.mid.gz"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_digest_matches_zlib_and_hashlib_over_several_chunks(tmp_path: Path) -> None:
    data = os.urandom(CHUNK * 2 + 123)
    d = digest_file(_src(tmp_path, data))
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert d == Digest(len(data), f"{zlib.adler32(data) & 0xFFFFFFFF:08x}", md5)


def test_put_copies_the_checksummed_bytes_and_leaves_no_temporary(tmp_path: Path) -> None:
    data = os.urandom(5000)
    src = _src(tmp_path, data)
    target = tmp_path / "rse" / "cygno" / "raw" / "run000001.mid.gz"
    digest, _ = put_posix(src, target)
    assert target.read_bytes() == data
    assert digest.adler32 == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["run000001.mid.gz"]
    assert src.read_bytes() == data  # the DAQ copy is untouched


def test_same_content_already_in_place_is_accepted(tmp_path: Path) -> None:
    src = _src(tmp_path, b"abc" * 100)
    target = tmp_path / "rse" / "f"
    put_posix(src, target)
    digest, _ = put_posix(src, target)
    assert digest.size == 300


def test_other_content_in_place_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "rse" / "f"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    with pytest.raises(AlreadyStoredDifferently, match="refusing to overwrite"):
        put_posix(_src(tmp_path, b"new content"), target)
    assert target.read_bytes() == b"old"


def test_a_file_that_grows_while_read_is_refused_and_nothing_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _src(tmp_path, b"first part")

    def digest_while_daq_writes(fin: BinaryIO, fout: BinaryIO | None = None) -> Digest:
        d = digest_stream(fin, fout)
        with src.open("ab") as more:  # the DAQ appends after our read
            more.write(b" and more")
        return d

    monkeypatch.setattr(storage, "digest_stream", digest_while_daq_writes)
    target = tmp_path / "rse" / "f"
    with pytest.raises(FileChanged, match="changed while it was uploaded"):
        put_posix(src, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_sidecar_checksum_mismatch_is_detected_and_nothing_placed(tmp_path: Path) -> None:
    target = tmp_path / "rse" / "f"
    with pytest.raises(ChecksumMismatch, match="adler32 mismatch"):
        put_posix(_src(tmp_path, b"data"), target, {"adler32": "00000001"})
    assert not target.exists()


def test_corrupted_write_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = storage.digest_file
    calls: list[Any] = []

    def read_back_differs(path: Path) -> Digest:
        calls.append(path)
        d = real(path)
        return Digest(d.size, "deadbeef", d.md5)

    monkeypatch.setattr(storage, "digest_file", read_back_differs)
    target = tmp_path / "rse" / "f"
    with pytest.raises(ChecksumMismatch, match="storage corrupted the write"):
        put_posix(_src(tmp_path, b"data"), target)
    assert not target.exists()
