"""inlet's Rucio policy package: naming schema, run-partitioned paths, and permissions.

Load it in the Rucio server and daemons with ``[policy] package = inlet.policies`` in rucio.cfg
(or ``RUCIO_POLICY_PACKAGE=inlet.policies``); ``inlet lake up`` does so by default. Rucio then
imports ``inlet.policies.schema`` and ``inlet.policies.permission`` in place of its generic
modules and registers the algorithms returned by :func:`get_algorithms`.

Everything here runs inside Rucio's processes: it imports nothing from the rest of inlet except
:mod:`inlet.policies` itself, and reads its naming rules as :mod:`inlet.policies.naming` explains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Rucio compares its major version ("41") with this set (rucio.common.plugins).
SUPPORTED_VERSION = "~=41.0"


def get_algorithms() -> dict[str, dict[str, Callable[..., Any]]]:
    """Algorithms by Rucio algorithm type; an RSE chooses ours with ``lfn2pfn_algorithm``."""
    from inlet.policies.lfn2pfn import ALGORITHM_NAME, run_partitioned

    return {"lfn2pfn": {ALGORITHM_NAME: run_partitioned}}
