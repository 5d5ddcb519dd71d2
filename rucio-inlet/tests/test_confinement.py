"""Storage access stays inside the RSE: real gfal2 copies, Rucio's real POSIX protocol (confined)
and the S3 protocol's bucket check, on temporary directories; nothing outside is created or removed."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocols import s3_protocol

from rucio_inlet.checksums import format_adler32

ALIAS = "/../../../../cygno.raw/0912/912345/run912345.mid.gz"


def _confine() -> ModuleType:
    from rucio_inlet import confine

    return confine


def _posix(prefix: Path) -> Any:
    from rucio_inlet.posix import Default

    attrs = {
        "scheme": "file",
        "hostname": "localhost",
        "port": 0,
        "prefix": f"{prefix}/",
        "impl": "rucio_inlet.posix.Default",
        "domains": {},
        "extended_attributes": None,
        "auth_token": None,
    }
    return Default(attrs, {"rse": "SITE_A_DISK", "id": "x", "deterministic": False, "protocols": []})


@pytest.fixture
def lake(tmp_path: Path, _rucio_config: None) -> dict[str, Path]:
    """Two RSE directories side by side, and a precious file beside them (outside both)."""
    a, b = tmp_path / "data" / "SITE_A_DISK", tmp_path / "data" / "PUBLIC"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    precious = tmp_path / "data" / "cygno.raw" / "0912" / "912345" / "run912345.mid.gz"
    precious.parent.mkdir(parents=True)
    precious.write_bytes(b"embargoed bytes")
    return {"root": tmp_path, "a": a, "b": b, "precious": precious}


# -- the shared check ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("location", "ok"),
    [
        ("file://localhost/d/R/s/ab/cd/f", True),
        ("file:///d/R/s/f", True),
        ("http://h:1/d/R/s/f", True),
        ("file://localhost/d/R//s//f", True),  # repeated slashes: the same file, as Rucio parses it
        ("file://localhost//d/R/s/f", True),
        ("file://localhost/d/R/s/a\x01b", False),
        ("file://localhost/d/R/s/ab/cd//../../../../x", False),
        ("file://localhost/d/R/../S/f", False),
        ("file://localhost/d/R2/f", False),  # a sibling whose name starts with the prefix
        ("file://localhost/d/R/", False),
        ("file://localhost/d/R/s/%2e%2e/%2e%2e/x", False),  # percent-encoded dots
        ("/d/R/s/./f", False),
        ("/etc/passwd", False),
    ],
)
@pytest.mark.usefixtures("_rucio_config")
def test_relative_inside(location: str, ok: bool) -> None:
    confine = _confine()
    if ok:
        assert confine.relative_inside("/d/R/", location, "R")
    else:
        with pytest.raises(confine.OutsideRSE, match="RSE R"):
            confine.relative_inside("/d/R/", location, "R")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "%2e%2e", "c.d"]), min_size=1, max_size=8).map("/".join))
@pytest.mark.usefixtures("_rucio_config")
def test_accepted_locations_never_normalise_outside(rest: str) -> None:
    confine = _confine()
    location = f"file://localhost/d/R/{rest}"
    try:
        confine.relative_inside("/d/R/", location, "R")
    except confine.OutsideRSE:
        return
    from urllib.parse import unquote

    assert os.path.normpath(unquote(f"/d/R/{rest}")).startswith("/d/R/")


# -- Rucio's POSIX protocol, confined -----------------------------------------------------------
def test_posix_delete_outside_the_prefix_is_refused_and_the_file_survives(lake: dict[str, Path]) -> None:
    proto = _posix(lake["a"])
    pfn = f"file://localhost{lake['a']}/test/ab/cd/{ALIAS}"
    with pytest.raises(_confine().OutsideRSE, match="SITE_A_DISK"):
        proto.delete(pfn)
    assert lake["precious"].read_bytes() == b"embargoed bytes"


def test_posix_every_operation_is_confined(lake: dict[str, Path], tmp_path: Path) -> None:
    proto = _posix(lake["a"])
    outside = f"file://localhost{lake['a']}/../cygno.raw/0912/912345/run912345.mid.gz"
    local = tmp_path / "up.dat"
    local.write_bytes(b"x")
    OutsideRSE = _confine().OutsideRSE
    with pytest.raises(OutsideRSE):
        proto.put(str(local), f"file://localhost{lake['a']}/../evil/f.dat")
    with pytest.raises(OutsideRSE):
        proto.get(outside, str(tmp_path / "got.dat"))
    with pytest.raises(OutsideRSE):
        proto.stat(outside)
    with pytest.raises(OutsideRSE):
        proto.rename(f"file://localhost{lake['a']}/test/f", outside)
    with pytest.raises(Exception, match=r"outside RSE|could resolve outside"):
        proto.exists(outside)
    assert not (lake["root"] / "data" / "evil").exists()
    assert not (tmp_path / "got.dat").exists()


def test_posix_inside_the_prefix_works_as_rucios(lake: dict[str, Path], tmp_path: Path) -> None:
    proto = _posix(lake["a"])
    local = tmp_path / "up.dat"
    local.write_bytes(b"hello")
    pfn = f"file://localhost{lake['a']}/test/2b/73/f.dat"
    proto.put(str(local), pfn)
    assert proto.exists(pfn)
    assert proto.stat(pfn)["filesize"] == 5
    proto.delete(pfn)
    assert not proto.exists(pfn)


def test_posix_symlinked_directory_leading_outside_is_refused(lake: dict[str, Path]) -> None:
    (lake["a"] / "test").symlink_to(lake["precious"].parent, target_is_directory=True)
    proto = _posix(lake["a"])
    with pytest.raises(_confine().OutsideRSE, match="symbolic link"):
        proto.delete(f"file://localhost{lake['a']}/test/run912345.mid.gz")
    assert lake["precious"].exists()


# -- the S3 protocol: its own bucket, keys that cannot move ---------------------------------------
@pytest.mark.parametrize(
    "pfn",
    [
        "http://127.0.0.1:29000/other-bucket/test/ab/cd/f",
        "http://127.0.0.1:29000/bucket/test/ab/cd//../../../../other-bucket/k",
        "http://127.0.0.1:29000/bucket/../other-bucket/k",
    ],
)
def test_s3_refuses_other_buckets_and_escaping_keys(s3: ModuleType, tmp_path: Path, pfn: str) -> None:
    proto = s3_protocol(s3)
    local = tmp_path / "f"
    local.write_bytes(b"x")
    OutsideRSE = _confine().OutsideRSE
    for call in (lambda: proto.stat(pfn), lambda: proto.delete(pfn), lambda: proto.put(str(local), pfn)):
        with pytest.raises(OutsideRSE, match="outside RSE S3"):
            call()


# -- the gfal2 transfertool: real copies on temporary directories -------------------------------
def _end(tt: ModuleType, rse: str, prefix: Path, location: str) -> Any:
    url = f"file://{location}"
    return tt.Endpoint(rse=rse, rse_id=rse.lower(), url=url, pfn=url, algorithm="ADLER32", prefix=f"{prefix}/")


def _hop(tt: ModuleType, sources: tuple[Any, ...], dst: Any, data: bytes) -> Any:
    return tt.Hop(
        request_id="r1",
        did="test:x",
        sources=sources,
        dst=dst,
        size=len(data),
        adler32=format_adler32(zlib.adler32(data)),
        md5=None,
        options=(),
        timeout=30,
    )


def test_destination_outside_the_rse_is_refused_with_the_reason(tt: ModuleType, lake: dict[str, Path]) -> None:
    src = lake["a"] / "test" / "f.dat"
    src.parent.mkdir()
    src.write_bytes(b"public bytes")
    # The attack: the destination path climbs out of PUBLIC and lands in a new directory.
    dst = f"{lake['b']}/test/ab/cd/{ALIAS.replace('cygno.raw', 'evil.dir')}"
    hop = _hop(tt, (_end(tt, "SITE_A_DISK", lake["a"], str(src)),), _end(tt, "PUBLIC", lake["b"], dst), b"public bytes")
    result = tt.copy_hop(hop)
    assert result.state == tt.RequestState.FAILED
    assert result.reason.startswith("DESTINATION OUTSIDE RSE")
    assert "PUBLIC" in result.reason
    assert not (lake["root"] / "data" / "evil.dir").exists()
    assert not (lake["root"] / "evil.dir").exists()
    assert list(lake["b"].iterdir()) == []  # not even the parent directories


def test_source_outside_the_rse_is_never_read(tt: ModuleType, lake: dict[str, Path]) -> None:
    # The alias: a public DID whose source path resolves to the embargoed file beside the RSE.
    src = f"{lake['a']}/test/ab/cd/{ALIAS}"
    dst = f"{lake['b']}/test/ab/cd/alias.dat"
    hop = _hop(tt, (_end(tt, "SITE_A_DISK", lake["a"], src),), _end(tt, "PUBLIC", lake["b"], dst), b"embargoed bytes")
    result = tt.copy_hop(hop)
    assert result.state == tt.RequestState.FAILED
    assert result.reason.startswith("SOURCE OUTSIDE RSE")
    assert not Path(dst).exists()


def test_a_good_source_after_a_refused_one_is_used(tt: ModuleType, lake: dict[str, Path]) -> None:
    good = lake["a"] / "test" / "g.dat"
    good.parent.mkdir()
    good.write_bytes(b"good")
    bad = _end(tt, "SITE_A_DISK", lake["a"], f"{lake['a']}/../x")
    dst = lake["b"] / "test" / "g.dat"
    hop = _hop(
        tt, (bad, _end(tt, "SITE_A_DISK", lake["a"], str(good))), _end(tt, "PUBLIC", lake["b"], str(dst)), b"good"
    )
    result = tt.copy_hop(hop)
    assert result.state == tt.RequestState.DONE, result.reason
    assert dst.read_bytes() == b"good"


def test_s3_destination_in_another_bucket_is_refused(tt: ModuleType, lake: dict[str, Path]) -> None:
    src = lake["a"] / "test" / "f.dat"
    src.parent.mkdir()
    src.write_bytes(b"x")
    dst = tt.Endpoint(
        rse="S3",
        rse_id="s3",
        url="s3://127.0.0.1:1/other/test/f.dat",
        pfn="http://127.0.0.1:1/other/test/f.dat",
        algorithm="MD5",
        prefix="/bucket/",
    )
    result = tt.copy_hop(_hop(tt, (_end(tt, "SITE_A_DISK", lake["a"], str(src)),), dst, b"x"))
    assert result.state == tt.RequestState.FAILED
    assert "DESTINATION OUTSIDE RSE" in result.reason and "/bucket/" in result.reason
