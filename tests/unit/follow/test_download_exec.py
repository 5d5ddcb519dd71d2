"""--download's path rule and verification, --exec's argv: hostile names and bad copies refused."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import pytest

from inlet.cli.follow_cmd import exec_argv, fill
from inlet.errors import InletError
from inlet.follow.download import ChecksumMismatch, Downloader, UnsafeName, target_path
from inlet.follow.source import FollowedFile

DATA = b"detector bytes" * 100


def followed(name: str = "run1.f0", scope: str = "kloe.raw", adler: str | None = None) -> FollowedFile:
    return FollowedFile(
        seq=1,
        scope=scope,
        name=name,
        rse="S3",
        size=len(DATA),
        adler32=adler or f"{zlib.adler32(DATA) & 0xFFFFFFFF:08x}",
        experiment="kloe",
        run_number=1,
        available_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        embargo_until=None,
    )


@pytest.mark.parametrize(
    ("scope", "name"),
    [
        ("kloe.raw", "../../etc/passwd"),
        ("..", "x"),
        ("kloe.raw", "/etc/passwd"),
        ("kloe.raw", "a/../../b"),
        ("kloe.raw", "a\x00b"),
        ("kloe.raw", "a\\..\\b"),
        ("kloe.raw", ""),
        ("kloe.raw", "a//b"),
        ("kloe.raw", "."),
    ],
)
def test_names_that_would_leave_the_directory_are_refused(tmp_path: Path, scope: str, name: str) -> None:
    with pytest.raises(UnsafeName):
        target_path(tmp_path, scope, name)


def test_a_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "kloe.raw").symlink_to(tmp_path)
    with pytest.raises(UnsafeName, match="resolves outside"):
        target_path(tmp_path / "dest", "kloe.raw", "x")


def test_plain_and_nested_names_land_inside(tmp_path: Path) -> None:
    assert target_path(tmp_path, "kloe.raw", "run1.f0") == tmp_path.resolve() / "kloe.raw" / "run1.f0"
    assert target_path(tmp_path, "kloe.raw", "d/run1.f0") == tmp_path.resolve() / "kloe.raw" / "d" / "run1.f0"


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def fetch(self, f: FollowedFile, dest: Path) -> None:
        self.calls += 1
        dest.write_bytes(self.data)


def test_download_verifies_adler32_and_leaves_no_partial_file(tmp_path: Path) -> None:
    good = Reader(DATA)
    path = Downloader(tmp_path, good).download(followed())  # type: ignore[arg-type]
    assert path.read_bytes() == DATA
    # Already there and verified (a restart after the download): not fetched again.
    Downloader(tmp_path, good).download(followed())  # type: ignore[arg-type]
    assert good.calls == 1
    bad = Reader(DATA[:-1] + b"X")
    with pytest.raises(ChecksumMismatch, match="adler32"):
        Downloader(tmp_path, bad, attempts=2).download(followed("run1.f1"))  # type: ignore[arg-type]
    assert bad.calls == 2
    assert sorted(p.name for p in (tmp_path / "kloe.raw").iterdir()) == ["run1.f0"]


def test_exec_fills_placeholders_inside_single_argv_words() -> None:
    words = exec_argv("reco --in {path} --tag 'a b {did}'", needs_path=True)
    f = followed("x; rm -rf ~")
    assert fill(words, f, Path("/d/kloe.raw/x; rm -rf ~")) == [
        "reco",
        "--in",
        "/d/kloe.raw/x; rm -rf ~",
        "--tag",
        "a b kloe.raw:x; rm -rf ~",
    ]
    with pytest.raises(InletError, match="no local file"):
        exec_argv("reco {path}", needs_path=False)
    with pytest.raises(InletError, match="empty"):
        exec_argv("  ", needs_path=False)
