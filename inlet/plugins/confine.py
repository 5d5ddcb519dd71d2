"""Storage access stays inside the RSE: the one check shared by the protocols and the transfertool.

Rucio builds a replica's location as ``prefix + path``, where the path comes from the lfn2pfn
algorithm (deterministic RSEs) or is stored as given (non-deterministic ones, ``add_replicas``
with a PFN). Nothing in Rucio checks that the result is still under the prefix: a DID name such
as ``/../../other.rse/file`` made the conveyor, running as root, create directories outside
every RSE, and would let the reaper delete any file it can reach. inlet's lfn2pfn already refuses
such paths (:mod:`inlet.policies.lfn2pfn`); this module is the check at the point of use, for
every path whatever produced it: a location must be ``<prefix>/<relative path>`` where the
relative path has no empty, ``.`` or ``..`` component (so that no normalisation, by the OS,
an HTTP client or an S3 endpoint, can move it) and no control character.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlparse

from rucio.common import exception as rucio_exc

from inlet.policies.lfn2pfn import UnsafePath, check_path


class OutsideRSE(rucio_exc.RSEOperationNotSupported):  # type: ignore[misc]
    """A location outside the RSE's prefix (or bucket): refused before any storage is touched.

    Deliberately not one of the errors Rucio's reaper treats as "gone" (SourceNotFound) or as
    "storage down" (RSEAccessDenied, ServiceUnavailable, which exclude the whole RSE): the reaper
    logs it and keeps the replica in the catalogue for an operator.
    """


def url_path(location: str) -> str:
    """The path part of a PFN or URL (``file://localhost/a/b`` -> ``/a/b``); a bare path as is."""
    parsed = urlparse(location)
    return parsed.path if parsed.scheme else location


def relative_inside(prefix: str, location: str, rse: str) -> str:
    """The path of ``location`` relative to ``prefix``; OutsideRSE unless it is safely inside.

    Both the raw and the percent-decoded path are checked, since either may reach the storage.
    """
    root = "/" + prefix.strip("/")
    raw = url_path(location)
    for path in dict.fromkeys((raw, unquote(raw))):
        if not path.startswith(root.rstrip("/") + "/"):
            raise OutsideRSE(f"{location} is outside RSE {rse}: not under its prefix {root}/; refused")
        rest = path[len(root.rstrip("/")) + 1 :]
        try:
            check_path(rest)
        except UnsafePath as exc:
            raise OutsideRSE(f"{location} could resolve outside RSE {rse} (prefix {root}/): {exc}; refused") from None
    return raw[len(root.rstrip("/")) + 1 :]


def local_path_inside(prefix: str, location: str, rse: str, real_root: str | None = None) -> str:
    """The filesystem path of a POSIX location inside ``prefix``; symlinked parents may not leave it either."""
    import os

    rest = relative_inside(prefix, location, rse)
    root = "/" + prefix.strip("/")
    path = posixpath.join(root, rest)
    parent = os.path.dirname(path)
    if os.path.isdir(parent):
        real_root = real_root or os.path.realpath(root)
        real_parent = os.path.realpath(parent)
        if real_parent != real_root and not real_parent.startswith(real_root.rstrip("/") + "/"):
            raise OutsideRSE(
                f"{location}: its directory resolves to {real_parent}, outside RSE {rse} ({real_root}) "
                "through a symbolic link; refused"
            )
    return path
