"""Rucio's POSIX protocol, confined to the RSE prefix: the ``impl`` of the lake's POSIX RSEs.

Rucio's ``rucio.rse.protocols.posix.Default`` opens, creates, renames and deletes whatever path
a PFN names. A replica registered with a path that resolves outside the RSE (a hostile DID name,
or a PFN given to ``add_replicas`` on a non-deterministic RSE) would then let ``rucio upload``
write there, and the reaper (running as root) delete any file it can reach. This class keeps
every behaviour of Rucio's, and refuses, on every operation, a location that is not a plain
relative path under the prefix (:mod:`rucio_inlet.confine`), with the reason.

Every operation of the parent class goes through :meth:`pfn2path`, so overriding it confines
them all (exists, get, put, delete, rename, stat).
"""

from __future__ import annotations

from typing import Any

from rucio.rse.protocols import posix

from rucio_inlet.confine import local_path_inside


class ConfinedPosix(posix.Default):  # type: ignore[misc]
    """``rucio.rse.protocols.posix.Default`` that never touches a path outside its prefix."""

    def pfn2path(self, pfn: str) -> str:
        rse: Any = self.rse.get("rse", "?") if isinstance(self.rse, dict) else "?"
        return local_path_inside(self.attributes["prefix"], pfn, str(rse))


#: Rucio loads ``impl`` by module and class name; ``Default`` is its convention.
Default = ConfinedPosix
