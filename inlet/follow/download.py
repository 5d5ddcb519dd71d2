"""``inlet follow --download DIR``: fetch each followed file from the RSE it became available on.

Through Rucio's own protocol for that RSE (``rsemanager``: posix, http, or inlet's S3 class),
as ``inlet rehearse``'s downloader does, because the follower knows the RSE already and wants
that copy, not whichever one Rucio's download client would pick. Every file is written to a
temporary name next to its target, its adler32 checked against the catalogue's, and only then
renamed into ``DIR/<scope>/<name>``: a file present under its name is complete and verified.

Names come from the catalogue, which takes them from the DAQ and Rucio: a scope or name that
would leave DIR (``..``, an absolute path, a NUL) is refused (:class:`UnsafeName`), never joined.

Rucio is imported lazily: the process must have ``RUCIO_CONFIG`` set first.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from rucio_inlet.checksums import file_adler32

from inlet.errors import InletError
from inlet.follow.source import FollowedFile


class UnsafeName(InletError):
    """A DID whose scope or name would put the file outside the download directory."""


class ChecksumMismatch(InletError):
    """The copy read from the RSE is not the file the catalogue describes."""

    exit_code = 1


def target_path(root: Path, scope: str, name: str) -> Path:
    """``root/scope/name``, or :class:`UnsafeName` if that would not be inside ``root``.

    Rucio allows ``/`` in names (a sub-directory is fine); it does not allow them to climb.
    """
    for part, what in ((scope, "scope"), (name, "name")):
        pure = PurePosixPath(part)
        if (
            not part
            or "\x00" in part
            or "\\" in part
            or pure.is_absolute()
            or not pure.parts
            or any(p in ("..", ".") for p in pure.parts)
            or part != str(pure)  # "a//b", "a/" or "./a": not a plain relative path
        ):
            raise UnsafeName(
                f"{what} {part[:120]!r} would put a file outside the download directory",
                "such a DID cannot be downloaded into a directory; it was skipped",
            )
    base = root.resolve()
    path = (base / scope / name).resolve()
    if not path.is_relative_to(base) or path == base:
        raise UnsafeName(
            f"{scope}:{name} resolves outside {root} (a symbolic link?)", "remove the link or choose another --download"
        )
    return path


def verified(path: Path, f: FollowedFile) -> bool:
    """True if ``path`` holds the file the catalogue describes (size, and adler32 when known)."""
    if not path.is_file() or path.stat().st_size != f.size:
        return False
    return f.adler32 is None or file_adler32(path) == f.adler32.lower().rjust(8, "0")


class RseReader:
    """Reads replicas from RSEs through the protocols Rucio lists for them (one per RSE, cached)."""

    def __init__(self) -> None:
        from rucio.rse import rsemanager

        self._rsemgr = rsemanager
        self._info: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _rse(self, rse: str) -> Any:
        with self._lock:
            if rse not in self._info:
                self._info[rse] = self._rsemgr.get_rse_info(rse=rse)
            return self._info[rse]

    def fetch(self, f: FollowedFile, dest: Path) -> None:
        info = self._rse(f.rse)
        pfns: dict[str, str] = self._rsemgr.lfns2pfns(info, [{"scope": f.scope, "name": f.name}], operation="read")
        pfn = next(iter(pfns.values()))
        proto = self._rsemgr.create_protocol(info, "read", scheme=urlparse(pfn).scheme or None)
        proto.connect()
        try:
            proto.get(pfn, str(dest))
        finally:
            proto.close()


class Downloader:
    """Download a followed file into ``root``, verified; already there and verified: nothing to do."""

    def __init__(self, root: Path, reader: RseReader | None = None, attempts: int = 3) -> None:
        self.root = root
        self.reader = reader or RseReader()
        self.attempts = attempts

    def download(self, f: FollowedFile) -> Path:
        """The local path of ``f``, fetched and verified. Raises :class:`UnsafeName`, or
        :class:`ChecksumMismatch` / the protocol's error after ``attempts`` tries."""
        path = target_path(self.root, f.scope, f.name)
        if verified(path, f):
            return path  # a restart after the file was fetched but before it was acknowledged
        path.parent.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for _ in range(self.attempts):
            tmp = path.with_name(f".{path.name}.inlet-{os.getpid()}.part")
            try:
                tmp.unlink(missing_ok=True)
                self.reader.fetch(f, tmp)
                if not verified(tmp, f):
                    got = file_adler32(tmp) if tmp.is_file() else "nothing"
                    raise ChecksumMismatch(
                        f"{f.did} from {f.rse}: adler32 {got}, size {tmp.stat().st_size if tmp.is_file() else 0}; "
                        f"the catalogue says {f.adler32}, {f.size} bytes",
                        "the replica is damaged: declare it bad in Rucio; the follower stops before this file",
                    )
                os.replace(tmp, path)
                return path
            except Exception as exc:
                last = exc
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        assert last is not None
        raise last
