"""Rucio DID-metadata plugin that keeps ``embargo_until`` where it is, even against ``delete_metadata``.

Why a plugin: Rucio 41's ``delete_metadata`` (``rucio.gateway.did.delete_metadata``) runs no
permission check at all: it takes no issuer and calls every metadata plugin that manages the
key. A permission rule can therefore never stop ``delete_metadata(scope, name, "embargo_until")``,
which lifted an embargo in one call. Rucio does call the plugins, and aborts the transaction when
one raises, so this plugin claims the one key ``embargo_until``, stores it exactly as Rucio's
JSON plugin does (same ``did_meta`` table, so filters, ``inlet embargo release`` and the policy's
batched lookup keep working) and refuses every deletion of it.

Nobody (root included: the plugin cannot see who asks) deletes the key; ending an embargo is
``set_metadata(..., "embargo_until", <past date>)``, which the permission check keeps for root and
accounts with the ``embargo-admin`` attribute.

Enable it before Rucio's JSON plugin (which claims every key, so it must come last)::

    [metadata]
    plugins = rucio_inlet.runmeta.RunMetaPlugin,rucio_inlet.embargo_meta.EmbargoMetaPlugin,
              rucio.core.did_meta_plugins.json_meta.JSONDidMeta  (one line in the file)

``inlet lake up`` writes this line.
"""

from __future__ import annotations

from typing import Any

from rucio.common import exception
from rucio.core.did_meta_plugins.json_meta import JSONDidMeta

from rucio_inlet.embargo import EMBARGO_ADMIN, EMBARGO_KEY

PLUGIN_NAME = "INLET_EMBARGO"
PLUGIN_PATH = "rucio_inlet.embargo_meta.EmbargoMetaPlugin"


class EmbargoMetaPlugin(JSONDidMeta):  # type: ignore[misc]
    """JSON storage for ``embargo_until`` only, without deletion (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._plugin_name = PLUGIN_NAME

    def manages_key(self, key: str, *, session: Any = None) -> bool:
        return key == EMBARGO_KEY

    def get_metadata(self, scope: Any, name: str, *, session: Any = None) -> dict[str, Any]:
        # The JSON plugin (listed after this one) shows the stored value already.
        return {}

    def delete_metadata(self, scope: Any, name: str, key: str, *, session: Any = None) -> None:
        raise exception.AccessDenied(
            f"{EMBARGO_KEY} of {getattr(scope, 'external', scope)}:{name} cannot be deleted: removing it would "
            f"lift the embargo. Root or an account with the '{EMBARGO_ADMIN}' attribute ends an embargo by setting "
            f"{EMBARGO_KEY} to a past date (or `inlet embargo release` once it has passed)."
        )
