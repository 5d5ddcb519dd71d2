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

A module named ``lfn2pfn`` with a function ``lfn2pfn`` would silently replace Rucio's default
algorithm for every RSE; this one is registered under a name and chosen per RSE with the
attribute ``lfn2pfn_algorithm = inlet_run``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from inlet.policies.naming import NamingSettings, active_naming

ALGORITHM_NAME = "inlet_run"

#: Limits of the stores a path must fit: S3 keys are at most 1024 bytes, POSIX names 255.
MAX_KEY_BYTES = 1024
MAX_COMPONENT_BYTES = 255


class UnsafePath(ValueError):
    """A path that would not work as an S3 key or POSIX path."""


def hash_path(scope: str, name: str) -> str:
    """Rucio's own ``hash`` layout, byte for byte (kept identical so existing replicas stay put)."""
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()  # noqa: S324 - a layout, not security
    if scope.startswith("user") or scope.startswith("group"):
        scope = scope.replace(".", "/")
    return f"{scope}/{digest[0:2]}/{digest[2:4]}/{name}"


def run_path(scope: str, name: str, run: int) -> str:
    path = f"{scope}/{run // 1000:04d}/{run:06d}/{name}"
    check_path(path)
    return path


def check_path(path: str) -> None:
    if len(path.encode()) > MAX_KEY_BYTES:
        raise UnsafePath(f"path {path[:80]}... is longer than {MAX_KEY_BYTES} bytes (S3 key limit): use a shorter name")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"path {path!r} has an empty, '.' or '..' component: fix the name pattern")
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise UnsafePath(f"path component {part[:40]}... exceeds {MAX_COMPONENT_BYTES} bytes (POSIX limit)")
        if "\x00" in part or "\\" in part:
            raise UnsafePath(f"path {path!r} contains NUL or backslash: not portable between S3 and POSIX")


def path_for(scope: str, name: str, naming: NamingSettings) -> str:
    run = naming.run_of(scope, name)
    return hash_path(scope, name) if run is None else run_path(scope, name, run)


def run_partitioned(scope: str, name: str, rse: str, rse_attrs: dict[str, Any], protocol_attrs: dict[str, Any]) -> str:
    """Rucio's lfn2pfn signature; RSE and protocol do not change the path."""
    del rse, rse_attrs, protocol_attrs
    return path_for(scope, name, active_naming())
