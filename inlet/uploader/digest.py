"""adler32 and md5 in one streaming pass, optionally writing the same bytes to a destination.

Copying and checksumming in one pass means the checksums describe exactly the bytes that were
put on storage: a file the DAQ is still writing cannot end up registered with checksums of
one version and content of another.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


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
    adler = 1
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    for chunk in iter(lambda: src.read(CHUNK), b""):
        adler = zlib.adler32(chunk, adler)
        md5.update(chunk)
        size += len(chunk)
        if dst is not None:
            dst.write(chunk)
    return Digest(size, f"{adler & 0xFFFFFFFF:08x}", md5.hexdigest())


def digest_file(path: Path) -> Digest:
    with path.open("rb") as fh:
        return digest_stream(fh)
