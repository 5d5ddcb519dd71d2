"""DAQ roots: what the uploader may read, and reading it without following a swapped path."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inlet.config import Settings, UploaderSettings
from inlet.uploader.plan import BadInput, check_task
from inlet.uploader.roots import DaqRoots, Refused, command_line_roots, grant, granted, worker_roots


@pytest.fixture
def daq(tmp_path: Path) -> Path:
    d = tmp_path / "daq"
    d.mkdir()
    (d / "run000001_pmt_0001.mid.gz").write_bytes(b"good bytes")
    return d


def refused(roots: DaqRoots, path: str | Path) -> Refused:
    with pytest.raises(Refused) as err:
        roots.check(path)
    return err.value


def test_a_regular_file_inside_a_root_is_accepted_and_read(daq: Path) -> None:
    f = DaqRoots([daq]).check(daq / "run000001_pmt_0001.mid.gz")
    with f.open() as fh:
        assert fh.read() == b"good bytes"
    assert f.size == len(b"good bytes")


def test_a_symlink_to_a_private_file_outside_the_roots_is_refused(daq: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"private")
    secret.chmod(0o600)
    link = daq / "run000001_pmt_0002.mid.gz"
    link.symlink_to(secret)
    err = refused(DaqRoots([daq]), link)
    assert err.kind == "outside-roots" and "symlink" in str(err) and str(secret) in str(err)


def test_a_directory_symlinked_from_outside_is_refused(daq: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run000001_pmt_0003.mid.gz").write_bytes(b"x")
    (daq / "sub").symlink_to(elsewhere)
    assert refused(DaqRoots([daq]), daq / "sub" / "run000001_pmt_0003.mid.gz").kind == "outside-roots"


def test_a_symlink_inside_the_roots_is_followed(daq: Path) -> None:
    (daq / "alias.mid.gz").symlink_to(daq / "run000001_pmt_0001.mid.gz")
    f = DaqRoots([daq]).check(daq / "alias.mid.gz")
    assert f.real == daq / "run000001_pmt_0001.mid.gz"


def test_a_path_named_outside_the_roots_is_refused_without_looking_at_it(daq: Path) -> None:
    err = refused(DaqRoots([daq]), "/etc/shadow")
    assert err.kind == "outside-roots" and "outside the DAQ roots" in str(err)


def test_dot_dot_is_normalised_before_the_check(daq: Path) -> None:
    (daq / "sub").mkdir()
    err = refused(DaqRoots([daq]), f"{daq}/sub/..")
    assert err.kind == "not-regular" and "directory" in str(err)
    assert refused(DaqRoots([daq]), f"{daq}/../../etc/passwd").kind == "outside-roots"


def test_directories_fifos_and_sockets_are_refused_with_what_they_are(daq: Path) -> None:
    os.mkfifo(daq / "fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(daq / "sock"))
    roots = DaqRoots([daq])
    try:
        assert "directory" in str(refused(roots, daq))
        assert "FIFO" in str(refused(roots, daq / "fifo"))
        assert "socket" in str(refused(roots, daq / "sock"))
        assert "character device" in str(refused(DaqRoots([Path("/dev")]), "/dev/null"))
    finally:
        s.close()


def test_nothing_is_accepted_without_roots(daq: Path) -> None:
    err = refused(DaqRoots([]), daq / "run000001_pmt_0001.mid.gz")
    assert "daq_roots" in str(err)


def test_a_nul_byte_or_empty_path_is_refused(daq: Path) -> None:
    assert refused(DaqRoots([daq]), f"{daq}/a\x00b").kind == "bad-path"
    assert refused(DaqRoots([daq]), "").kind == "bad-path"


def test_a_file_swapped_for_a_symlink_after_the_check_is_not_read(daq: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"private")
    target = daq / "run000001_pmt_0001.mid.gz"
    checked = DaqRoots([daq]).check(target)
    target.unlink()
    target.symlink_to(secret)
    with pytest.raises(Refused) as err:
        checked.open()
    assert err.value.kind == "symlink"


def test_a_file_replaced_by_another_after_the_check_is_not_read(daq: Path) -> None:
    target = daq / "run000001_pmt_0001.mid.gz"
    checked = DaqRoots([daq]).check(target)
    target.rename(daq / "old")  # kept alive, so that the new file cannot reuse its inode
    target.write_bytes(b"other inode")
    with pytest.raises(Refused) as err:
        checked.open()
    assert err.value.kind == "changed"


def test_a_fifo_swapped_in_after_the_check_does_not_hang(daq: Path) -> None:
    target = daq / "run000001_pmt_0001.mid.gz"
    checked = DaqRoots([daq]).check(target)
    target.unlink()
    os.mkfifo(target)
    with pytest.raises(Refused):
        checked.open()


def _settings(tmp_path: Path, roots: list[Path] | None = None) -> Settings:
    return Settings(uploader=UploaderSettings(state_dir=tmp_path / "state", daq_roots=roots or []))


def test_without_configured_roots_the_command_line_grants_its_directories(daq: Path, tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert not worker_roots(s)
    roots, to_grant = command_line_roots(s, [daq])
    assert roots.contains(daq / "x") and to_grant == [daq]
    grant(s, daq)
    assert granted(s) == [Path(os.path.realpath(daq))]
    assert worker_roots(s).check(daq / "run000001_pmt_0001.mid.gz").size > 0
    assert (tmp_path / "state" / "daq-roots").stat().st_mode & 0o777 == 0o700


def test_configured_roots_win_and_grant_nothing(daq: Path, tmp_path: Path) -> None:
    s = _settings(tmp_path, [daq])
    roots, to_grant = command_line_roots(s, [tmp_path / "elsewhere"])
    assert to_grant == [] and not roots.contains(tmp_path / "elsewhere" / "f")
    assert worker_roots(s).contains(daq / "f")


def test_the_file_system_root_is_never_a_root(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    with pytest.raises(Refused):
        command_line_roots(s, [Path("/")])
    with pytest.raises(Refused):
        grant(s, Path("/"))


@pytest.mark.parametrize(
    ("items", "run", "stream"),
    [
        ("x", 1, "raw"),
        ([{"path": "/a"}], "abc", "raw"),
        ([], True, "raw"),
        ([], 10**7, "raw"),
        ([], 1, 5),
        ([], -1, "raw"),
    ],
)
def test_a_malformed_task_is_refused_as_a_whole(items: object, run: object, stream: object) -> None:
    with pytest.raises(BadInput):
        check_task(items, run, stream, None)


def test_malformed_items_are_refused_one_by_one() -> None:
    good, refused_items = check_task(
        [
            {"path": "/daq/a", "size": "abc", "submitted_at": float("nan")},
            5,
            {"path": 7},
            {"path": "x" * 5000},
            {"path": "/a\x00b"},
            {"nopath": 1},
        ],
        1,
        "raw",
        None,
    )
    assert good == [{"path": "/daq/a"}]
    assert len(refused_items) == 5
    assert json.dumps(refused_items)  # every reason is plain text


_KEYS = st.sampled_from(["path", "size", "sidecar", "x"])
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEYS, c, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(json_like, json_like, json_like, json_like)
def test_any_task_arguments_are_checked_or_refused_never_crash(items: Any, run: Any, stream: Any, exp: Any) -> None:
    try:
        good, refused_items = check_task(items, run, stream, exp)
    except BadInput as exc:
        message = str(exc)
        assert message.startswith("task refused:"), message
        return
    for item in good:
        assert isinstance(item["path"], str) and set(item) <= {"path", "size", "sidecar", "submitted_at"}
    assert len(good) + len(refused_items) == len(items)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab./\x00 ", max_size=30))
def test_any_path_string_is_checked_or_refused_never_crash(path: str) -> None:
    roots = DaqRoots([Path("/nonexistent-root")])
    with pytest.raises(Refused):
        roots.check(path)
