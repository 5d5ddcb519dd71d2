"""DAQ release decisions (rule states stubbed at the Rucio seam) and the closed-file rule."""

from __future__ import annotations

import json
import os
from pathlib import Path

from inlet.uploader.daq_release import Pending, PendingStore, Releaser
from inlet.uploader.digest import digest_file
from inlet.uploader.watch import ClosedFileDetector


def _pending(tmp_path: Path, data: bytes = b"payload") -> tuple[PendingStore, Path]:
    daq = tmp_path / "daq" / "run000001.mid.gz"
    daq.parent.mkdir(parents=True)
    daq.write_bytes(data)
    d = digest_file(daq)
    store = PendingStore(tmp_path / "pending")
    store.add(Pending("cygno.raw", daq.name, str(daq), d.size, d.adler32, d.md5))
    return store, daq


def test_not_released_while_a_rule_is_not_ok(tmp_path: Path) -> None:
    store, daq = _pending(tmp_path)
    rel = Releaser(store, None, lambda s, n: {"r1": "OK", "r2": "REPLICATING"})
    assert rel.poll_once() == 0
    assert daq.exists()
    rel = Releaser(store, None, lambda s, n: {})
    assert not rel.release("cygno.raw", daq.name)
    assert daq.exists()


def test_released_once_all_rules_are_ok_and_deleted_once(tmp_path: Path) -> None:
    store, daq = _pending(tmp_path)
    rel = Releaser(store, None, lambda s, n: {"r1": "OK", "r2": "OK"})
    rel.on_event({"event_type": "daq-release", "payload": {"scope": "cygno.raw", "name": daq.name}})
    assert not daq.exists()
    assert store.get("cygno.raw", daq.name) is None
    assert not rel.release("cygno.raw", daq.name)  # a repeated signal does nothing


def test_moved_to_the_done_area_when_configured(tmp_path: Path) -> None:
    store, daq = _pending(tmp_path)
    done = tmp_path / "done"
    Releaser(store, done, lambda s, n: {"r1": "OK"}).poll_once()
    assert (done / daq.name).read_bytes() == b"payload"


def test_a_local_copy_that_changed_is_never_deleted(tmp_path: Path) -> None:
    store, daq = _pending(tmp_path)
    daq.write_bytes(b"rewritten")
    assert not Releaser(store, None, lambda s, n: {"r1": "OK"}).release("cygno.raw", daq.name)
    assert daq.read_bytes() == b"rewritten"
    assert store.get("cygno.raw", daq.name) is not None


def test_other_events_are_ignored(tmp_path: Path) -> None:
    store, daq = _pending(tmp_path)
    rel = Releaser(store, None, lambda s, n: {"r1": "OK"})
    rel.on_event({"event_type": "file-registered", "payload": {"scope": "cygno.raw", "name": daq.name}})
    assert daq.exists()


def test_sidecar_closes_a_file_at_once(tmp_path: Path) -> None:
    f = tmp_path / "run000042.mid.gz"
    f.write_bytes(b"x")
    (tmp_path / "run000042.mid.gz.json").write_text(json.dumps({"run": 42, "adler32": "00620079"}))
    det = ClosedFileDetector(tmp_path, stable_seconds=60)
    (c,) = det.scan(now=0)
    assert (c.path, c.run, c.sidecar["adler32"]) == (f, 42, "00620079")
    assert det.scan(now=1) == []  # offered once


def test_without_sidecar_a_file_must_stay_still(tmp_path: Path) -> None:
    f = tmp_path / "run000007_pmt_0001.mid.gz"
    f.write_bytes(b"a")
    det = ClosedFileDetector(tmp_path, stable_seconds=5)
    assert det.scan(now=100) == []
    assert det.scan(now=103) == []
    with f.open("ab") as fh:
        fh.write(b"b")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1))
    assert det.scan(now=104) == []  # changed: the clock restarts
    assert det.scan(now=108) == []
    (c,) = det.scan(now=109)
    assert (c.path, c.run) == (f, 7)


def _age_directory(d: Path) -> None:
    """The same old mtime every time: what a directory whose entries did not change shows."""
    os.utime(d, (1_700_000_000, 1_700_000_000))


def test_an_unchanged_directory_is_not_listed_again_until_a_full_scan_is_due(tmp_path: Path) -> None:
    f = tmp_path / "run000042_pmt_0001.mid.gz"
    f.write_bytes(b"x")
    (tmp_path / f"{f.name}.json").write_text("{}")
    _age_directory(tmp_path)
    det = ClosedFileDetector(tmp_path, stable_seconds=60)
    assert [c.path for c in det.scan()] == [f]
    # Rewritten in place: no directory entry changes, so the quick check sees nothing new...
    f.write_bytes(b"xy")
    _age_directory(tmp_path)
    assert det.scan() == []
    # ...until the periodic full scan, which offers the changed file again.
    det.full_scan_every = 0
    assert [c.path for c in det.scan()] == [f]


def test_a_new_sidecar_is_seen_on_the_next_quick_scan(tmp_path: Path) -> None:
    done = tmp_path / "run000042_pmt_0001.mid.gz"
    done.write_bytes(b"x")
    (tmp_path / f"{done.name}.json").write_text("{}")
    _age_directory(tmp_path)
    det = ClosedFileDetector(tmp_path, stable_seconds=60)
    assert [c.path for c in det.scan()] == [done]
    assert det.scan() == []
    new = tmp_path / "run000042_pmt_0002.mid.gz"
    new.write_bytes(b"y")
    (tmp_path / f"{new.name}.json").write_text("{}")  # the DAQ closes it: the directory's mtime moves
    assert [c.path for c in det.scan()] == [new]


def test_a_file_waiting_for_stability_keeps_full_scans_going(tmp_path: Path) -> None:
    f = tmp_path / "run000007_pmt_0001.mid.gz"
    f.write_bytes(b"a")
    _age_directory(tmp_path)
    det = ClosedFileDetector(tmp_path, stable_seconds=5)
    assert det.scan(now=100) == []
    (c,) = det.scan(now=106)  # the directory did not change, the file's wait did
    assert c.path == f
