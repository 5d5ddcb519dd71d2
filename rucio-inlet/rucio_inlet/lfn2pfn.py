"""Run-partitioned storage paths: ``<scope>/<run // 1000>/<run>/<name>``.

Why partition by run: a flat or hash-only layout scatters one run over thousands of directories
(Virgo keeps ~30 million strain files); by run, one run is one directory, a thousand runs share a
parent, and a site can find, list or recall a run with a plain ``ls`` or S3 prefix listing.

The path is a pure function of (scope, name) and the naming rules, so it is deterministic, and it
is collision-free: the scope is the first component, the name is everything after the third, so
two different DIDs never share a path. Names that are not run files (generic and user scopes,
datasets) keep Rucio's ``hash`` layout exactly, so switching an RSE to this algorithm leaves their
existing replicas where they are; and a hash path (two hex characters after the scope) can never
equal a run path (at least four digits after the scope).

Every path either algorithm returns stays under the RSE prefix: :func:`check_path` refuses an
absolute path or an empty, ``.`` or ``..`` component (and control characters), so
``prefix + path`` can never name a file outside the RSE nor another DID's file. The server's
schema already refuses such names (:func:`rucio_inlet.naming.name_problem`), but a DID may
reach a path through a route Rucio does not validate (bulk ``add_dids``) or predate the rule:
the layout is the last line, and it refuses with :class:`UnsafePath` rather than build the path.

The run layout is registered under a name and chosen per RSE with the attribute
``lfn2pfn_algorithm = inlet_run``. This module's function named ``lfn2pfn`` is, by Rucio's
convention, the policy package's *default* algorithm: RSEs without that attribute (or with
``hash``) get :func:`lfn2pfn`, Rucio's hash layout byte for byte plus the same confinement.
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any

from rucio.common.exception import InvalidPath

from rucio_inlet.naming import NamingSettings, active_naming

ALGORITHM_NAME = "inlet_run"

#: Limits of the stores a path must fit: S3 keys are at most 1024 bytes, POSIX names 255.
MAX_KEY_BYTES = 1024
MAX_COMPONENT_BYTES = 255


class UnsafePath(InvalidPath, ValueError):  # type: ignore[misc]
    """A path that would not work as an S3 key or POSIX path, or would leave the RSE prefix.

    A Rucio exception, so that the server answers with this message rather than a bare error.
    """


def hash_path(scope: str, name: str) -> str:
    """Rucio's own ``hash`` layout, byte for byte (kept identical so existing replicas stay put)."""
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()  # noqa: S324 - a layout, not security
    if scope.startswith("user") or scope.startswith("group"):
        scope = scope.replace(".", "/")
    return f"{scope}/{digest[0:2]}/{digest[2:4]}/{name}"


def run_path(scope: str, name: str, run: int) -> str:
    return f"{scope}/{run // 1000:04d}/{run:06d}/{name}"


def check_path(path: str) -> None:
    """Refuse a relative path that could leave, or alias inside, the directory it is joined to."""
    if path.startswith("/"):
        raise UnsafePath(f"path {path!a} is absolute: it would not stay under the RSE prefix")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path):
        raise UnsafePath(f"path {path!a} contains a control character: fix the DID name")
    if len(path.encode()) > MAX_KEY_BYTES:
        raise UnsafePath(f"path {path[:80]}... is longer than {MAX_KEY_BYTES} bytes (S3 key limit): use a shorter name")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(
                f"path {path!a} has an empty, '.' or '..' component: it could leave the RSE prefix or alias "
                "another file; fix the DID name (or the name pattern)"
            )
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise UnsafePath(f"path component {part[:40]}... exceeds {MAX_COMPONENT_BYTES} bytes (POSIX limit)")
        if "\x00" in part or "\\" in part:
            raise UnsafePath(f"path {path!a} contains NUL or backslash: not portable between S3 and POSIX")


def stays_under(prefix: str, path: str) -> bool:
    """True if ``prefix/path``, normalised, is still inside ``prefix`` (and is not ``prefix`` itself)."""
    root = posixpath.normpath("/" + prefix.strip("/"))
    joined = posixpath.normpath(f"{root}/{path}")
    return joined.startswith(root.rstrip("/") + "/")


def confined(scope: str, name: str, path: str) -> str:
    """``path`` if it is safe under any prefix; else UnsafePath naming the DID."""
    try:
        check_path(path)
    except UnsafePath as exc:
        # ascii(): Rucio copies the message into an HTTP header, which must stay Latin-1.
        raise UnsafePath(f"refusing a storage path for DID {scope}:{name!a}: {exc.args[0]}") from None
    return path


def path_for(scope: str, name: str, naming: NamingSettings) -> str:
    run = naming.run_of(scope, name)
    return confined(scope, name, hash_path(scope, name) if run is None else run_path(scope, name, run))


def run_partitioned(scope: str, name: str, rse: str, rse_attrs: dict[str, Any], protocol_attrs: dict[str, Any]) -> str:
    """Rucio's lfn2pfn signature; RSE and protocol do not change the path."""
    del rse, rse_attrs, protocol_attrs
    return path_for(scope, name, active_naming())


def lfn2pfn(scope: str, name: str, rse: str, rse_attrs: dict[str, Any], protocol_attrs: dict[str, Any]) -> str:
    """The policy package's default algorithm: Rucio's ``hash`` layout, confined (see the module doc)."""
    del rse, rse_attrs, protocol_attrs
    return confined(scope, name, hash_path(scope, name))
