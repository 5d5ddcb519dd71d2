"""The gfal2 transfertool in Rucio's OWN conveyor daemons, registered through the policy package.

Rucio has no entry point for transfertools: ``rucio.core.transfer.TRANSFERTOOL_CLASSES_BY_NAME``
is a dict literal. What Rucio does run in every conveyor daemon (``rucio-conveyor-submitter``,
``-poller``, ``-finisher``, as Helm starts them) is the policy package's :func:`get_algorithms`:
importing ``rucio.core.transfer`` imports ``rucio.transfertool.fts3_plugins``, whose module body
instantiates ``ActivityBasedTransferPriorityPlugin``, a ``PolicyPackageAlgorithms``; its
constructor imports ``[policy] package`` and calls ``get_algorithms()``
(``rucio/common/plugins.py``, ``_try_importing_policy``).

That call happens while ``rucio.core.transfer`` is still half-imported (the dict is defined
after its imports). So :func:`register_gfal2` registers at once when the dict exists, and
otherwise leaves a finder on ``sys.meta_path`` that registers on the first import after
``rucio.core.transfer`` has finished, then removes itself. The daemons always import further
modules between the two (``rucio.daemons.conveyor.common``, ...), before they look a transfertool up.

Only processes whose rucio.cfg selects it (``[conveyor] transfertool = gfal2``) and that can
import the gfal2 binding register it: a server, or a site that keeps FTS, is left unchanged.

What Rucio would need upstream to make this a one-liner: an algorithm type such as
``transfertool`` in ``POLICY_ALGORITHM_TYPES`` (``rucio/common/constants.py``) whose classes
``rucio/core/transfer.py`` merges into ``TRANSFERTOOL_CLASSES_BY_NAME`` after defining it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Optional

log = logging.getLogger(__name__)

TRANSFERTOOL = "gfal2"
_lock = threading.RLock()
_state = {"done": False}


def selected() -> bool:
    """Whether this process's rucio.cfg selects the gfal2 transfertool (``[conveyor] transfertool``)."""
    try:
        from rucio.common.config import config_get_list

        tools = config_get_list("conveyor", "transfertool", raise_exception=False, default=[]) or []
    except Exception:  # no rucio.cfg (clients, tools): nothing to register
        return False
    return TRANSFERTOOL in [t.strip() for t in tools]


def _transfer_module_ready() -> bool:
    module = sys.modules.get("rucio.core.transfer")
    return module is not None and hasattr(module, "TRANSFERTOOL_CLASSES_BY_NAME")


def _register_now() -> None:
    _state["done"] = True
    if importlib.util.find_spec("gfal2") is None:
        # Loud only where it matters: the server and the other daemons share the conveyor's rucio.cfg.
        conveyor = "conveyor" in (getattr(sys, "argv", None) or [""])[0]  # mod_wsgi may have no argv
        log.log(
            logging.WARNING if conveyor else logging.DEBUG,
            "rucio_inlet: [conveyor] transfertool = gfal2, but this Python (%s) cannot import the gfal2 binding; "
            "run the conveyor on an interpreter that has it (python3-gfal2 / gfal2-python)",
            sys.version.split()[0],
        )
        return
    from rucio_inlet.transfertool import register

    register()
    log.info("rucio_inlet: gfal2 transfertool registered in Rucio's conveyor")


class _AfterTransferImport(importlib.abc.MetaPathFinder):
    """Registers once ``rucio.core.transfer`` has finished importing; never finds a module itself."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None) -> Any:
        if _transfer_module_ready():
            with _lock:
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                if not _state["done"]:
                    _register_now()
        return None


def register_gfal2() -> None:
    """Register the gfal2 transfertool in this Rucio process, now or right after rucio.core.transfer loads."""
    with _lock:
        if _state["done"] or not selected():
            return
        if _transfer_module_ready():
            _register_now()
        elif not any(isinstance(f, _AfterTransferImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterTransferImport())
