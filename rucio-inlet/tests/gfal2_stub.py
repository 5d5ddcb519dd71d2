"""A file:// stand-in for the gfal2 binding, used ONLY where gfal2 cannot be imported.

Debian's python3-gfal2 is built for CPython 3.11, and gfal2-python does not build from PyPI
against Debian's libgfal2: on the Python 3.9 venv (Rucio's official images' Python) there is no
binding at all. The transfertool's own logic (confinement, checksum verdicts, source fail-over,
the per-link engine) is what these tests check, so on 3.9 conftest.py puts this module in
``sys.modules["gfal2"]``: the seam is the module name ``gfal2``, nothing inside the transfertool.
It implements the calls the transfertool makes, for local files, with gfal2's error wording
("No such file or directory", "CHECKSUM MISMATCH"). On 3.11 the same tests run the real gfal2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zlib
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse


class GError(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class checksum_mode:  # gfal2's own (lower-case) name
    none = 0
    source = 1
    target = 2
    both = 3


class _Params:
    def __init__(self) -> None:
        self.overwrite = False
        self.create_parent = False
        self.timeout = 0
        self.checksum: Optional[tuple[int, str, str]] = None

    def set_checksum(self, mode: int, algorithm: str, value: str) -> None:
        self.checksum = (mode, algorithm, value)


def _path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise GError(f"Protocol not supported by the file-only stub: {url}")
    return Path(parsed.path)


def _checksum(path: Path, algorithm: str) -> str:
    data = path.read_bytes()
    if algorithm.upper() == "ADLER32":
        return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    return hashlib.md5(data).hexdigest()  # noqa: S324 - storage checksum, not security


class _Context:
    def __init__(self) -> None:
        self.options: dict[tuple[str, str], Any] = {}

    def set_opt_boolean(self, group: str, key: str, value: bool) -> None:
        self.options[group, key] = value

    set_opt_integer = set_opt_boolean
    set_opt_string = set_opt_boolean

    def transfer_parameters(self) -> _Params:
        return _Params()

    def stat(self, url: str) -> os.stat_result:
        try:
            return os.stat(_path(url))
        except FileNotFoundError as exc:
            raise GError(f"stat {url}: No such file or directory", 2) from exc

    def checksum(self, url: str, algorithm: str) -> str:
        path = _path(url)
        if not path.exists():
            raise GError(f"checksum {url}: No such file or directory", 2)
        return _checksum(path, algorithm)

    def unlink(self, url: str) -> None:
        try:
            _path(url).unlink()
        except FileNotFoundError as exc:
            raise GError(f"unlink {url}: No such file or directory", 2) from exc

    def filecopy(self, params: _Params, src: str, dst: str) -> None:
        source, target = _path(src), _path(dst)
        if not source.exists():
            raise GError(f"SOURCE {src}: No such file or directory", 2)
        if target.exists() and not params.overwrite:
            raise GError(f"DESTINATION {dst}: File exists", 17)
        if params.create_parent:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not target.parent.exists():
            raise GError(f"DESTINATION {dst}: No such file or directory", 2)
        shutil.copyfile(source, target)
        if params.checksum is not None and params.checksum[0] in (checksum_mode.target, checksum_mode.both):
            _, algorithm, want = params.checksum
            got = _checksum(target, algorithm)
            if got.lower() != want.lower():
                raise GError(
                    f"DESTINATION CHECKSUM MISMATCH User defined checksum and destination do not match {got} != {want}"
                )


def creat_context() -> _Context:
    return _Context()
