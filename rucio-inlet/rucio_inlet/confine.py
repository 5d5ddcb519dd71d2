"""Storage access stays inside the RSE: the one check shared by the protocols and the transfertool.

Rucio builds a replica's location as ``prefix + path``, where the path comes from the lfn2pfn
algorithm (deterministic RSEs) or is stored as given (non-deterministic ones, ``add_replicas``
with a PFN). Nothing in Rucio checks that the result is still under the prefix: a DID name such
as ``/../../other.rse/file`` made the conveyor, running as root, create directories outside
every RSE, and would let the reaper delete any file it can reach. inlet's lfn2pfn already refuses
such paths (:mod:`rucio_inlet.lfn2pfn`); this module is the check at the point of use, for
every path whatever produced it: a location must be ``<prefix>/<relative path>`` where the
relative path has no ``.`` or ``..`` component (so that no normalisation, by the OS, an HTTP
client or an S3 endpoint, can move it) and no control character.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlparse

from rucio.common import exception as rucio_exc


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

    Repeated slashes are read as one, as Rucio's own PFN parser and POSIX read them (some
    non-deterministic conventions produce them); a ``.`` or ``..`` component, a control
    character, or no file name at all is refused. Both the raw and the percent-decoded path are
    checked, since either may reach the storage.
    """
    root = "/" + "/".join(p for p in prefix.split("/") if p)
    under = root.rstrip("/") + "/"
    raw = url_path(location)
    relative = ""
    for path in dict.fromkeys((raw, unquote(raw))):
        squashed = "/".join(p for p in path.split("/") if p)
        squashed = ("/" if path.startswith("/") else "") + squashed
        if not squashed.startswith(under) or path.endswith("/"):
            raise OutsideRSE(f"{location} is outside RSE {rse}: not a file under its prefix {under}; refused")
        relative = relative or squashed[len(under) :]
        parts = squashed[len(under) :].split("/")
        if any(p in (".", "..") for p in parts):
            raise OutsideRSE(
                f"{location} could resolve outside RSE {rse} (prefix {under}): it has a '.' or '..' component; refused"
            )
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path):
            raise OutsideRSE(f"{location!a} has a control character; refused on RSE {rse}")
    return relative


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
