"""Where files the uploader cannot take go, with the reason beside them: nothing is deleted.

``<quarantine>/<name>`` is the file, ``<quarantine>/<name>.reason.json`` says why, when and
where it came from; an alarm line is logged at ERROR, and the callers publish a
``file-quarantined`` event (:func:`inlet.uploader.events.file_quarantined`) built from
:func:`quarantine_info`'s answer, which the listener routes to its alarm webhook.

Only a regular file inside the DAQ roots is ever moved. The path is normalised first (a task
naming ``dir/sub/..`` names ``dir``, a directory: refused); a symlink, a directory, a special
file or anything outside the roots stays where it is, and only the reason file and the alarm
say why. The move itself cannot be redirected either: the file is hard-linked into the
quarantine (``link`` never follows a symlink and refuses a directory), the link is checked to
be the very inode that was examined, and only then is the original name removed. Across file
systems the bytes are copied from a descriptor opened with ``O_NOFOLLOW`` and checked the same
way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from inlet.uploader.roots import DaqRoots, Refused, normalise

log = logging.getLogger("inlet.uploader.alarm")

#: Room for ".<n>" and ".reason.json" under the usual 255-byte name limit.
_MAX_NAME = 200


def quarantine(path: Path, qdir: Path, reason: str, kind: str, roots: DaqRoots) -> Path | None:
    """Move ``path`` into ``qdir`` (never over an existing file) and write the reason file."""
    moved = quarantine_info(path, qdir, reason, kind, roots)["moved_to"]
    return Path(moved) if moved else None


def _free_target(qdir: Path, name: str) -> Path:
    base = name[:_MAX_NAME] or "unnamed"
    target, n = qdir / base, 1
    while os.path.lexists(target) or os.path.lexists(target.with_name(target.name + ".reason.json")):
        target = qdir / f"{base}.{n}"
        n += 1
    return target


def _movable(p: Path, roots: DaqRoots) -> os.stat_result:
    """The lstat of ``p`` if it may be moved; :class:`Refused` (kept in place) otherwise."""
    if not roots.contains(p):
        raise Refused("outside-roots", "outside the DAQ roots")
    st = os.lstat(p)
    if not stat.S_ISREG(st.st_mode):
        what = (
            "a symlink"
            if stat.S_ISLNK(st.st_mode)
            else "a directory"
            if stat.S_ISDIR(st.st_mode)
            else ("not a regular file")
        )
        raise Refused("not-regular", what)
    real = Path(os.path.realpath(p.parent)) / p.name
    if not roots.contains(real):
        raise Refused("outside-roots", f"its directory resolves to {real.parent}, outside the DAQ roots")
    return st


def _same(st: os.stat_result, other: os.stat_result) -> bool:
    return stat.S_ISREG(other.st_mode) and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _move_regular(p: Path, target: Path, st: os.stat_result) -> None:
    """Move the regular file ``p`` (examined as ``st``) to ``target``; never anything else."""
    try:
        os.link(p, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        _copy_regular(p, target, st)
    else:
        if not _same(st, os.lstat(target)):
            os.unlink(target)
            raise Refused("changed", "replaced by something else while it was being quarantined")
    os.unlink(p)


def _copy_regular(p: Path, target: Path, st: os.stat_result) -> None:
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as src:
        if not _same(st, os.fstat(fd)):
            raise Refused("changed", "replaced by something else while it was being quarantined")
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IMODE(st.st_mode) or 0o600)
        try:
            with os.fdopen(out, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise


def quarantine_info(
    path: str | os.PathLike[str],
    qdir: Path,
    reason: str,
    kind: str,
    roots: DaqRoots,
    companions: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """:func:`quarantine`, answering with what the reason file says (source, kind, reason, at, moved_to).

    ``companions`` (a DAQ sidecar) follow the file under the same new name, on the same terms.
    """
    try:
        p: Path | None = normalise(path)
    except Refused:
        p = None
    source = str(p) if p is not None else repr(path)
    qdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = _free_target(qdir, p.name if p is not None else "")
    moved: Path | None = None
    kept_because: str | None = None
    if p is None:
        kept_because = "not a file path"
    else:
        try:
            st = _movable(p, roots)
            _move_regular(p, target, st)
            moved = target
        except Refused as exc:
            kept_because = str(exc)
        except OSError as exc:
            kept_because = f"cannot be moved ({exc.strerror or exc})"
    info: dict[str, Any] = {
        "source": source,
        "kind": kind,
        "reason": reason,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "moved_to": str(moved) if moved else None,
    }
    if kept_because:
        info["left_in_place"] = kept_because
        log.error("not moving %s to quarantine (%s); it stays in place", source, kept_because)
    if moved is not None and p is not None:
        for extra in companions:
            c = normalise(extra)
            suffix = c.name[len(p.name) :] if c.name.startswith(p.name) else f".{c.name}"
            with contextlib.suppress(Refused, OSError):
                if not os.path.lexists(c):
                    continue
                c_target = target.with_name(target.name + suffix)
                if not os.path.lexists(c_target):
                    _move_regular(c, c_target, _movable(c, roots))
                    info.setdefault("companions", []).append(str(c_target))
    reason_file = target.with_name(target.name + ".reason.json")
    fd = os.open(reason_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(info, indent=2) + "\n")
    log.error("ALARM quarantined %s (%s): %s", source, kind, reason)
    return info
