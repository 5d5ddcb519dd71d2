from __future__ import annotations

import hashlib
import io
import os
import zlib
from pathlib import Path

from rucio_inlet.checksums import ChecksumReader, file_checksums, format_adler32, same_adler32


def test_reader_gives_adler32_and_md5_of_what_it_handed_out() -> None:
    data = os.urandom(3_000_001)
    reader = ChecksumReader(io.BytesIO(data))
    got = b"".join(iter(lambda: reader.read(65536), b""))
    assert got == data
    assert reader.adler32 == format_adler32(zlib.adler32(data))
    assert reader.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert reader.bytes_read == len(data)


def test_expected_etag_is_the_s3_multipart_etag_whatever_the_read_sizes() -> None:
    part = 5 * 2**20
    data = os.urandom(2 * part + 12345)
    reader = ChecksumReader(io.BytesIO(data), part_size=part)
    while reader.read(777_777):  # reads that straddle part boundaries
        pass
    digests = [hashlib.md5(data[i : i + part], usedforsecurity=False).digest() for i in range(0, len(data), part)]
    assert reader.expected_etag() == hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest() + "-3"


def test_expected_etag_of_a_single_part_is_the_plain_md5() -> None:
    data = b"x" * 1000
    reader = ChecksumReader(io.BytesIO(data), part_size=5 * 2**20)
    reader.read()
    assert reader.expected_etag() == hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_adler32_comparison_ignores_leading_zeros_and_case() -> None:
    assert same_adler32("0a0b0c0d", "A0B0C0D")
    assert not same_adler32("0a0b0c0d", "0a0b0c0e")
    assert format_adler32(1) == "00000001"


def test_file_checksums_reads_a_file_once(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(100_000)
    path.write_bytes(data)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert file_checksums(str(path)) == (format_adler32(zlib.adler32(data)), md5)
