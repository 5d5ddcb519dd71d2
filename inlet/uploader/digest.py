"""adler32 and md5 in one streaming pass, optionally writing the same bytes to a destination.

Copying and checksumming in one pass means the checksums describe exactly the bytes that were
put on storage: a file the DAQ is still writing cannot end up registered with checksums of
one version and content of another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rucio_inlet.checksums import CHUNK, ChecksumReader

__all__ = ["CHUNK", "Digest", "FileState", "digest_file", "digest_stream"]


@dataclass(frozen=True)
class Digest:
    size: int
    adler32: str
    md5: str


@dataclass(frozen=True)
class FileState:
    """What tells that a file changed: size, modification time (ns) and inode."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileState:
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


def digest_stream(src: BinaryIO, dst: BinaryIO | None = None) -> Digest:
    """Size, adler32 and md5 of what SRC yields, each chunk also written to DST if given (the
    checksums are Rucio's, from the same reader the storage plugins use)."""
    reader = ChecksumReader(src)
    for chunk in iter(lambda: reader.read(CHUNK), b""):
        if dst is not None:
            dst.write(chunk)
    return Digest(reader.bytes_read, reader.adler32, reader.md5)


def digest_file(path: Path) -> Digest:
    with path.open("rb") as fh:
        return digest_stream(fh)
