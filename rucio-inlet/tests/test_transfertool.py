"""The gfal2 transfertool without Rucio's catalogue: real gfal2 copies between local directories."""

from __future__ import annotations

import os
import threading
import time
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rucio_inlet.checksums import format_adler32


def _tt() -> ModuleType:
    # Imported on use (see conftest): by then the session's RUCIO_CONFIG is settled.
    from rucio_inlet import transfertool

    return transfertool


def _end(path: Path, rse: str = "A", **kw: object) -> Any:
    url = f"file://{path}"
    return _tt().Endpoint(rse=rse, rse_id=rse.lower(), url=url, pfn=url, algorithm="ADLER32", **kw)


def _hop(src: Path, dst: Path, adler32: str | None = None, size: int | None = None, **kw: object) -> Any:
    data = src.read_bytes() if src.exists() else b""
    return _tt().Hop(
        request_id="r1",
        did="test:f",
        sources=(_end(src, **kw),),
        dst=_end(dst, "B"),
        size=len(data) if size is None else size,
        adler32=adler32 if adler32 is not None else format_adler32(zlib.adler32(data)),
        md5=None,
        options=(),
        timeout=60,
    )


def test_copy_hop_copies_bytes_and_verifies_adler32(tt: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "src.dat"
    src.write_bytes(os.urandom(200_000))
    dst = tmp_path / "deep" / "dir" / "dst.dat"
    result = tt.copy_hop(_hop(src, dst))
    assert result.state == tt.RequestState.DONE, result.reason
    assert dst.read_bytes() == src.read_bytes()
    assert result.checksum.startswith("ADLER32:")
    assert result.started_at is not None and result.transferred_at is not None


def test_corrupt_source_fails_with_gfal2s_checksum_mismatch_and_no_destination(tt: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "src.dat"
    src.write_bytes(os.urandom(50_000))
    hop = _hop(src, tmp_path / "dst.dat")
    src.write_bytes(os.urandom(50_000))  # corrupted after "registration"
    result = tt.copy_hop(hop)
    assert result.state == tt.RequestState.FAILED
    assert "SOURCE CHECKSUM MISMATCH" in result.reason
    assert not (tmp_path / "dst.dat").exists()


def test_missing_source_fails_with_gfal2s_reason(tt: ModuleType, tmp_path: Path) -> None:
    result = tt.copy_hop(_hop(tmp_path / "absent.dat", tmp_path / "dst.dat", adler32="00000001", size=1))
    assert result.state == tt.RequestState.FAILED
    assert "No such file" in result.reason or "not found" in result.reason.lower()


def test_size_mismatch_with_the_catalogue_fails_and_removes_the_copy(tt: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "src.dat"
    src.write_bytes(b"abc")
    hop = _hop(src, tmp_path / "dst.dat", size=4)
    result = tt.copy_hop(hop)
    assert result.state == tt.RequestState.FAILED and "SIZE MISMATCH" in result.reason
    assert not (tmp_path / "dst.dat").exists()


def test_tape_source_waits_the_recall_delay_and_records_staging(tt: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "src.dat"
    src.write_bytes(b"tape bytes")
    result = tt.copy_hop(_hop(src, tmp_path / "dst.dat", is_tape=True, recall_delay=0.2))
    assert result.state == tt.RequestState.DONE
    assert result.staging_started_at is not None and result.staging_finished_at is not None
    assert (result.staging_finished_at - result.staging_started_at).total_seconds() >= 0.2


def test_second_source_is_tried_when_the_first_is_missing(tt: ModuleType, tmp_path: Path) -> None:
    good = tmp_path / "good.dat"
    good.write_bytes(os.urandom(1000))
    hop = _hop(good, tmp_path / "dst.dat")
    hop = tt.Hop(**{**hop.__dict__, "sources": (_end(tmp_path / "missing.dat", "M"), _end(good, "G"))})
    result = tt.copy_hop(hop)
    assert result.state == tt.RequestState.DONE and result.source is not None and result.source.rse == "G"


def test_engine_bounds_parallel_copies_per_link(
    tt: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def fake_copy(hop: Any) -> Any:  # the seam: the engine's scheduling, not gfal2
        link = hop.sources[0].rse
        with lock:
            running[link] = running.get(link, 0) + 1
            peak[link] = max(peak.get(link, 0), running[link])
        time.sleep(0.05)
        with lock:
            running[link] -= 1
        return tt.HopResult(tt.RequestState.DONE)

    monkeypatch.setattr(tt, "copy_hop", fake_copy)
    engine = tt.CopyEngine(link_concurrency=2)
    paths = []
    for i in range(12):
        h = _hop(tmp_path / "x", tmp_path / "y", adler32="1", size=0)
        src = _end(tmp_path / "x", "L1" if i % 2 else "L2")
        paths.append([tt.Hop(**{**h.__dict__, "request_id": f"r{i}", "sources": (src,)})])
    eid = engine.submit(paths)
    assert engine.wait_idle(timeout=30)
    engine.shutdown()
    status = engine.status(eid)
    assert status is not None and len(status) == 12
    assert peak == {"L1": 2, "L2": 2}


def test_unknown_job_is_reported_lost_so_rucio_requeues(tt: ModuleType) -> None:
    tool = tt.Gfal2Transfertool("gfal2@test")
    answer = tool.bulk_query({"no-such-job": {"r1": {}}})
    assert answer == {"no-such-job": None}


def test_register_adds_gfal2_and_lets_posix_and_s3_rses_pair(tt: ModuleType) -> None:
    from rucio.common.constants import SCHEME_MAP
    from rucio.core.transfer import TRANSFERTOOL_CLASSES_BY_NAME

    tt.register()
    tt.register()  # idempotent
    assert TRANSFERTOOL_CLASSES_BY_NAME["gfal2"] is tt.Gfal2Transfertool
    assert SCHEME_MAP["http"].count("file") == 1 and "http" in SCHEME_MAP["file"]


def test_rucio_posix_pfns_are_given_to_gfal2_without_localhost(tt: ModuleType) -> None:
    assert tt.gfal2_plain_url("file://localhost/data/x") == "file:///data/x"
    assert tt.gfal2_plain_url("s3://h:1/b/k") == "s3://h:1/b/k"


def test_a_posix_copy_replaces_a_leftover_and_leaves_no_temporary_file(tt: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "src.dat"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    dst = tmp_path / "out" / "dst.dat"
    dst.parent.mkdir()
    dst.write_bytes(b"what a failed attempt left")
    result = tt.copy_hop(_hop(src, dst))
    assert result.state == tt.RequestState.DONE, result.reason
    assert dst.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dst.parent.iterdir()) == ["dst.dat"]
    assert result.checksum == f"ADLER32:{zlib.adler32(src.read_bytes()) & 0xFFFFFFFF:08x}"
