"""Streaming checksums: Rucio's adler32 and md5, computed while bytes flow, never in a second read."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import IO, Protocol

CHUNK = 1 << 20


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def format_adler32(value: int) -> str:
    """Rucio's spelling: 8 lowercase hex digits, zero-padded."""
    return f"{value & 0xFFFFFFFF:08x}"


def file_adler32(path: Path) -> str:
    """adler32 of a whole file, read in blocks (downloads and copies are verified with it)."""
    value = 1
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            value = zlib.adler32(block, value)
    return format_adler32(value)


def same_adler32(a: str, b: str) -> bool:
    # Rucio stores adler32 with and without leading zeros depending on who registered it.
    return a.lower().lstrip("0") == b.lower().lstrip("0")


class ChecksumReader:
    """A read-only file wrapper that feeds every byte it hands out to adler32 and md5.

    Multipart uploads read each part once: the per-part md5s give the S3 multipart ETag, so
    the bytes the endpoint received can be checked without reading the object back.
    """

    def __init__(self, raw: IO[bytes] | _Readable, part_size: int = 0) -> None:
        self._raw = raw
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._part_size = part_size
        self._part = hashlib.md5(usedforsecurity=False)
        self._in_part = 0
        self.part_digests: list[bytes] = []
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        if data:
            self._adler = zlib.adler32(data, self._adler)
            self._md5.update(data)
            self.bytes_read += len(data)
            if self._part_size:
                self._feed_parts(data)
        return data

    def _feed_parts(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self._part_size:
                self.part_digests.append(self._part.digest())
                self._part = hashlib.md5(usedforsecurity=False)
                self._in_part = 0

    @property
    def adler32(self) -> str:
        return format_adler32(self._adler)

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    def expected_etag(self) -> str:
        """The ETag an S3 endpoint gives these bytes: plain md5, or md5-of-part-md5s + "-N"."""
        parts = list(self.part_digests)
        if self._in_part:
            parts.append(self._part.digest())
        if not self._part_size or len(parts) <= 1:
            return self.md5
        joined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
        return f"{joined}-{len(parts)}"


def file_checksums(path: str) -> tuple[str, str]:
    """(adler32, md5) of a local file, in one read."""
    with open(path, "rb") as fh:
        reader = ChecksumReader(fh)
        while reader.read(CHUNK):
            pass
    return reader.adler32, reader.md5
