"""inlet's Rucio policy package: naming schema, run-partitioned paths, and permissions.

Load it in the Rucio server and daemons with ``[policy] package = rucio_inlet`` in rucio.cfg
(or ``RUCIO_POLICY_PACKAGE=rucio_inlet``); ``inlet lake up`` does so by default. Rucio then
imports ``rucio_inlet.schema`` and ``rucio_inlet.permission`` in place of its generic
modules and registers the algorithms returned by :func:`get_algorithms`.

Everything here runs inside Rucio's processes: it imports nothing from the rest of inlet except
:mod:`rucio_inlet` itself, and reads its naming rules as :mod:`rucio_inlet.naming` explains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Rucio compares its major version ("41") with this set (rucio.common.plugins).
SUPPORTED_VERSION = "~=41.0"


def get_algorithms() -> dict[str, dict[str, Callable[..., Any]]]:
    """Algorithms by Rucio algorithm type; an RSE chooses ours with ``lfn2pfn_algorithm``.

    Rucio calls this in every process that loads policy algorithms, its conveyor daemons
    included: that is where the gfal2 transfertool gets registered (:mod:`rucio_inlet.registration`).
    """
    from rucio_inlet.lfn2pfn import ALGORITHM_NAME, run_partitioned
    from rucio_inlet.registration import register_gfal2

    register_gfal2()

    return {"lfn2pfn": {ALGORITHM_NAME: run_partitioned}}
