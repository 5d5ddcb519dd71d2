"""The DAQ's closed-file sidecar (``<file><suffix>``, JSON), read as the hostile input it may be.

Known keys, all optional: ``run`` (0-999999), ``adler32`` (8 hex digits), ``md5`` (32 hex
digits), ``size`` (bytes, a non-negative integer). Other keys are ignored. Anything else is a
:class:`BadSidecar` whose message says what is wrong and how to fix it: a value of the wrong
type (``"run": "abc"``), out of range, a number with absurdly many digits, NaN, duplicate
keys, nesting deeper than the parser allows, non-UTF-8, not JSON, bigger than
:data:`MAX_BYTES`, or a sidecar that is a symlink, a directory or a special file. The caller
quarantines the data file with that reason; no bad sidecar ever reaches the copy or the
registration, so one bad file never makes its batch fail (and retry) as a whole.

The same check runs on the worker over the sidecar a task message carries
(:func:`check_sidecar`), because a task message is input too.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 64 * 1024
#: More digits than any run, size or checksum needs; also keeps int() away from its 4,300-digit limit.
_MAX_DIGITS = 20
_RUN_MAX = 999_999
_SIZE_MAX = 2**63 - 1
_HEX = {"adler32": re.compile(r"[0-9a-fA-F]{8}"), "md5": re.compile(r"[0-9a-fA-F]{32}")}


class BadSidecar(ValueError):
    """A sidecar the uploader refuses; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Sidecar:
    run: int | None = None
    adler32: str | None = None
    md5: str | None = None
    size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """What the worker compares the file's bytes with (only the keys the DAQ gave)."""
        return {
            k: v
            for k, v in (("adler32", self.adler32), ("md5", self.md5), ("size", self.size), ("run", self.run))
            if v is not None
        }


def _int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_DIGITS:
        raise BadSidecar(f"a number with {len(digits)} digits; no sidecar value needs more than {_MAX_DIGITS}")
    return int(text)


def _no_constant(name: str) -> Any:
    raise BadSidecar(f"{name} is not a number JSON allows; write the value itself")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise BadSidecar(f"key {k!r} appears twice; write each key once")
        out[k] = v
    return out


def _whole(value: Any, key: str, low: int, high: int) -> int:
    # bool is an int in Python but never a run number or a size in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadSidecar(f"{key!r} is {_shown(value)}; it must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise BadSidecar(f"{key!r} is {value}, outside {low}-{high}")
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_sidecar(doc: Any) -> Sidecar:
    """Validate a decoded sidecar (``None``: no sidecar)."""
    if doc is None:
        return Sidecar()
    if not isinstance(doc, dict):
        raise BadSidecar(f'the sidecar is a JSON {type(doc).__name__}, not an object like {{"run": 123, ...}}')
    run = doc.get("run")
    size = doc.get("size")
    sums: dict[str, str | None] = {}
    for key, pattern in _HEX.items():
        value = doc.get(key)
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            n = 8 if key == "adler32" else 32
            raise BadSidecar(f"{key!r} is {_shown(value)}; it must be a string of {n} hex digits")
        sums[key] = value.lower() if isinstance(value, str) else None
    return Sidecar(
        run=None if run is None else _whole(run, "run", 0, _RUN_MAX),
        adler32=sums["adler32"],
        md5=sums["md5"],
        size=None if size is None else _whole(size, "size", 0, _SIZE_MAX),
    )


def parse_sidecar(data: bytes) -> Sidecar:
    """Parse and validate the bytes of a sidecar."""
    if len(data) > MAX_BYTES:
        raise BadSidecar(f"the sidecar has {len(data)} bytes, more than {MAX_BYTES}; a sidecar holds a few keys")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSidecar(f"the sidecar is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_int=_int, parse_constant=_no_constant, object_pairs_hook=_unique)
    except BadSidecar:
        raise
    except RecursionError:
        raise BadSidecar("the sidecar nests too deeply to be read; a sidecar is one flat JSON object") from None
    except ValueError as exc:
        raise BadSidecar(f"the sidecar is not JSON ({exc})") from None
    if doc is None:
        raise BadSidecar('the sidecar is JSON null, not an object like {"run": 123, ...}')
    return check_sidecar(doc)


def read_sidecar(path: Path) -> Sidecar | None:
    """The sidecar at ``path``, None if there is none; :class:`BadSidecar` if it cannot be one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadSidecar(f"{path.name} is a symlink; the DAQ must write the sidecar itself") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):
            raise BadSidecar(f"{path.name} is not a regular file") from None
        raise BadSidecar(f"{path.name} cannot be read ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise BadSidecar(f"{path.name} is {what}, not a regular file")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise BadSidecar(f"{path.name} cannot be read ({exc.strerror or exc})") from None
    return parse_sidecar(data)
