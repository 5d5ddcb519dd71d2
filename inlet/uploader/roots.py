"""Which DAQ files the uploader may read: only regular files inside the DAQ roots, read without
following any path that leads elsewhere.

A path arrives from a command line, a directory scan or a Celery task message; all three are
input. :meth:`DaqRoots.check` normalises it (``dir/sub/..`` is ``dir``), requires it to be
named inside a root *and* to resolve (symlinks followed) inside a root, and refuses
directories and special files (FIFOs, sockets, devices) with the reason. A path named outside
every root is refused without even an ``lstat``: a forged task cannot probe the host.

Between that check and the read the path could be swapped (a symlink planted in its place).
:meth:`DaqFile.open` therefore opens the resolved path with ``O_NOFOLLOW`` (a symlink as last
component fails), ``O_NONBLOCK`` (a FIFO swapped in cannot hang the worker), and then checks
on the open descriptor that it is the very regular file that was checked (device and inode)
and that the kernel's own view of its path (``/proc/self/fd``) is still inside a root.

Roots come from ``[uploader] daq_roots``. When that is empty (the development default),
``inlet upload`` and ``inlet watch`` *grant* the directories they were given by writing them
under the uploader's state directory, and workers that share that state directory accept
those. The grant lives on the local file system, never in the task message, so a task sent
straight to Redis cannot name its own roots.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from inlet.config import Settings


class Refused(ValueError):
    """A path the uploader will not read; ``kind`` goes into the reason file and the alarm."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def normalise(path: str | os.PathLike[str]) -> Path:
    """Absolute and lexically normal (``a/b/..`` is ``a``); refuses what no file name can be."""
    raw = os.fspath(path)
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise Refused("bad-path", f"{raw!r} is not a file path (empty or with a NUL byte)")
    return Path(os.path.normpath(os.path.abspath(raw)))


def _within(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _what(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symlink"),
    ):
        if test(mode):
            return name
    return "special file"


@dataclass(frozen=True)
class DaqFile:
    """A checked DAQ file: ``path`` as named (normalised), ``real`` with symlinks resolved."""

    path: Path
    real: Path
    dev: int
    ino: int
    size: int
    roots: tuple[Path, ...]

    def open(self) -> BinaryIO:
        """The checked file, opened so that no swap since the check can redirect the read."""
        try:
            fd = os.open(self.real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused("symlink", f"{self.path}: became a symlink after it was checked; not read") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (self.dev, self.ino):
                raise Refused(
                    "changed", f"{self.path}: replaced by another {_what(st.st_mode)} after it was checked; not read"
                )
            with contextlib.suppress(OSError):  # no /proc: the inode comparison above stands alone
                where = Path(os.readlink(f"/proc/self/fd/{fd}"))
                if where.is_absolute() and not _within(where, self.roots):
                    raise Refused("outside-roots", f"{self.path}: opened as {where}, outside the DAQ roots; not read")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise


_HINT = "set [uploader] daq_roots (INLET_UPLOADER__DAQ_ROOTS)"


class DaqRoots:
    """The directories DAQ files may be read from (each resolved once, at construction)."""

    def __init__(self, roots: Iterable[Path], hint: str = _HINT) -> None:
        out: list[Path] = []
        for r in roots:
            # Both spellings: a root named through a symlink (/tmp -> /private/tmp) is still that root.
            for p in (normalise(r), Path(os.path.realpath(r))):
                if p not in out:
                    out.append(p)
        self.roots = tuple(out)
        self.hint = hint

    def __bool__(self) -> bool:
        return bool(self.roots)

    def contains(self, path: Path) -> bool:
        return _within(path, self.roots)

    def check(self, path: str | os.PathLike[str]) -> DaqFile:
        """A readable-by-policy regular file inside the roots, or :class:`Refused` saying why."""
        p = normalise(path)
        if not self.roots:
            raise Refused("outside-roots", f"{p}: no DAQ root is configured or granted; {self.hint}")
        if not self.contains(p):
            raise Refused(
                "outside-roots",
                f"{p} is outside the DAQ roots ({', '.join(map(str, self.roots))}); not read. "
                f"Put DAQ files under a root, or {self.hint}",
            )
        try:
            lst = os.lstat(p)
            real = Path(os.path.realpath(p, strict=True))
            st = os.stat(real)
        except FileNotFoundError:
            raise Refused("missing", f"{p}: no such file (or a dangling symlink)") from None
        except OSError as exc:
            raise Refused("unreadable", f"{p}: cannot be examined ({exc.strerror or exc})") from None
        if not self.contains(real):
            how = "a symlink" if stat.S_ISLNK(lst.st_mode) else "reached through a symlink"
            raise Refused("outside-roots", f"{p} is {how} to {real}, outside the DAQ roots; not read")
        if stat.S_ISDIR(st.st_mode):
            raise Refused("not-regular", f"{p} is a directory; give the DAQ files themselves")
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not-regular", f"{p} is a {_what(st.st_mode)}, not a regular file; only DAQ files are read")
        return DaqFile(p, real, st.st_dev, st.st_ino, st.st_size, self.roots)


# -- roots granted on the command line (daq_roots empty) ------------------------------------


def grants_dir(settings: Settings) -> Path:
    state = settings.uploader.state_dir
    return (state if state.is_absolute() else settings.lake.state_dir / state) / "daq-roots"


def grant(settings: Settings, directory: Path) -> Path:
    """Record ``directory`` as a DAQ root for workers sharing this state directory."""
    real = Path(os.path.realpath(normalise(directory)))
    if real == Path(real.anchor):
        raise Refused(
            "bad-root",
            f"{directory}: the file system root cannot be a DAQ root; keep DAQ files in a directory of "
            "their own, or set [uploader] daq_roots",
        )
    d = grants_dir(settings)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = d / hashlib.sha256(str(real).encode()).hexdigest()[:32]
    if not f.exists():
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(str(real) + "\n")
        tmp.replace(f)
    return real


def granted(settings: Settings) -> list[Path]:
    d = grants_dir(settings)
    out = []
    with contextlib.suppress(OSError):
        for f in sorted(d.iterdir()):
            if f.suffix == ".tmp" or not f.is_file():
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                text = f.read_text().strip()
                if text.startswith("/"):
                    out.append(Path(text))
    return out


def worker_roots(settings: Settings) -> DaqRoots:
    """The roots a worker checks every task against: configured, else granted locally."""
    configured = settings.uploader.daq_roots
    if configured:
        return DaqRoots(configured)
    return DaqRoots(
        granted(settings),
        "set [uploader] daq_roots on this worker (or run `inlet upload`/`inlet watch` with the same "
        "[uploader] state_dir)",
    )


def command_line_roots(settings: Settings, directories: Iterable[Path]) -> tuple[DaqRoots, list[Path]]:
    """The roots of one `inlet upload`/`inlet watch` and the directories still to :func:`grant`.

    Configured roots win (and nothing is granted). Otherwise the directories given are the
    roots; the caller grants them only once every file checked out, so that a refused
    command leaves no new root behind.
    """
    configured = settings.uploader.daq_roots
    if configured:
        return DaqRoots(configured), []
    dirs = list(dict.fromkeys(normalise(d) for d in directories))
    for d in dirs:
        if Path(os.path.realpath(d)) == Path(d.anchor):
            raise Refused(
                "bad-root",
                f"{d}: the file system root cannot be a DAQ root; keep DAQ files in a directory of "
                "their own, or set [uploader] daq_roots",
            )
    return DaqRoots(dirs), dirs
