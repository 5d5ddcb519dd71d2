"""Putting a DAQ file's bytes on the first RSE, checksummed on the way.

For a POSIX RSE (``file`` scheme) the bytes are copied in the same pass that computes
adler32 and md5, into a temporary name next to the target, then linked into place
(``link`` never replaces an existing file, so nothing is ever overwritten) and read back to
prove the stored copy has the checksum that will be registered. Other schemes go through
Rucio's RSE manager, which checks the checksum itself. Either way the source's size, mtime
and inode are compared before and after: a file that changed meanwhile is not placed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

from inlet.uploader.digest import Digest, FileState, digest_file, digest_stream


class FileChanged(Exception):
    """The source changed while it was read: nothing was placed; retry once the DAQ closed it."""


class ChecksumMismatch(Exception):
    """Stored bytes or an expected checksum disagree with the source: nothing was registered."""


class AlreadyStoredDifferently(Exception):
    """The target path already holds other content under this DID: refused, never overwritten."""


@dataclass(frozen=True)
class Placed:
    pfn: str
    digest: Digest
    state: FileState


def _check_expected(path: Path, digest: Digest, expect: dict[str, Any]) -> None:
    for key in ("adler32", "md5"):
        want = expect.get(key)
        got = getattr(digest, key)
        if want and str(want).lower() != got:
            raise ChecksumMismatch(
                f"{path}: {key} mismatch: the DAQ's sidecar says {want}, the file's bytes give {got}; the file "
                "is corrupt or the sidecar is stale: nothing was registered"
            )
    size = expect.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        # Validated upstream (inlet.uploader.sidecar); a per-file refusal here, never an exception that fails the batch.
        raise ChecksumMismatch(f"{path}: the sidecar's size {str(size)[:40]!r} is not a whole number")
    if size is not None and size != digest.size:
        raise ChecksumMismatch(f"{path}: size mismatch: the sidecar says {size} bytes, the file has {digest.size}")


def _unchanged(path: Path, before: FileState) -> FileState:
    try:
        after = FileState.of(path)
    except OSError as exc:
        raise FileChanged(f"{path} disappeared while it was uploaded ({exc})") from exc
    if after != before:
        raise FileChanged(
            f"{path} changed while it was uploaded (size {before.size} -> {after.size}, mtime changed: "
            f"{before.mtime_ns != after.mtime_ns}); nothing was registered, it will be retried once closed"
        )
    return after


Opener = Callable[[], BinaryIO]


def put_posix(
    src: Path, target: Path, expect: dict[str, Any] | None = None, open_src: Opener | None = None
) -> tuple[Digest, FileState]:
    """Copy ``src`` to ``target``; ``open_src`` opens it safely (see :meth:`inlet.uploader.roots.DaqFile.open`)."""
    before = FileState.of(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.inlet-{uuid.uuid4().hex[:8]}")
    try:
        with open_src() if open_src is not None else src.open("rb") as fin, tmp.open("wb") as fout:
            digest = digest_stream(fin, fout)
        state = _unchanged(src, before)
        if digest.size != state.size:
            raise FileChanged(f"{src}: read {digest.size} bytes but the file has {state.size}: it is being written")
        if expect:
            _check_expected(src, digest, expect)
        try:
            os.link(tmp, target)
        except FileExistsError:
            there = digest_file(target)
            if (there.size, there.adler32) != (digest.size, digest.adler32):
                raise AlreadyStoredDifferently(
                    f"{target} already holds {there.size} bytes with adler32 {there.adler32}, not this file's "
                    f"{digest.size} bytes with adler32 {digest.adler32}; refusing to overwrite: rename the file"
                ) from None
            return digest, state
        stored = digest_file(target)
        if (stored.size, stored.adler32, stored.md5) != (digest.size, digest.adler32, digest.md5):
            with contextlib.suppress(OSError):
                target.unlink()
            raise ChecksumMismatch(
                f"{target}: stored copy has adler32 {stored.adler32} (size {stored.size}), the source "
                f"{digest.adler32} (size {digest.size}): storage corrupted the write; removed, will retry"
            )
        return digest, state
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class FirstRse:
    """The RSE that receives the bytes; resolves PFNs once per process through Rucio."""

    def __init__(self, rse: str) -> None:
        from rucio.rse import rsemanager

        self.rse = rse
        self.info = rsemanager.get_rse_info(rse)
        self._rsemgr = rsemanager

    def pfns(self, dids: list[tuple[str, str]]) -> dict[str, str]:
        lfns = [{"scope": s, "name": n} for s, n in dids]
        return dict(self._rsemgr.lfns2pfns(self.info, lfns, operation="write"))

    def put(
        self,
        src: Path,
        scope: str,
        name: str,
        pfn: str,
        expect: dict[str, Any] | None = None,
        open_src: Opener | None = None,
    ) -> Placed:
        """Place ``src`` (its resolved path; ``open_src`` opens it without following a swapped path)."""
        parsed = urlparse(pfn)
        if parsed.scheme == "file":
            digest, state = put_posix(src, Path(parsed.path), expect, open_src)
            return Placed(pfn, digest, state)
        before = FileState.of(src)
        if open_src is not None:
            with open_src() as fh:
                digest = digest_stream(fh)
        else:
            digest = digest_file(src)
        if expect:
            _check_expected(src, digest, expect)
        _unchanged(src, before)
        item = {
            "scope": scope,
            "name": name,
            "filesize": digest.size,
            "adler32": digest.adler32,
            "md5": digest.md5,
            "path": str(src),
        }
        self._rsemgr.upload(self.info, [item], source_dir=None)
        return Placed(pfn, digest, _unchanged(src, before))
