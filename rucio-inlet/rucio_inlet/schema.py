"""inlet's DID schema: Rucio's generic schema plus scope and name rules per experiment.

Rucio validates every DID it is asked to create (``add_did`` and its content, ``add_replicas``,
``attach_dids``...) against these JSON schemas inside the server, so a name that breaks the
rules is refused whoever sends it. One route escapes: the bulk ``add_dids`` gateway validates
nothing, so the permission check must refuse with
:meth:`~rucio_inlet.naming.NamingSettings.did_problem` there. ``jsonschema`` reports the
failing ``pattern`` and the ``description`` next to it, which is how the client's error message
shows the expected form.

Only what changes is defined here; everything else resolves to ``rucio.common.schema.generic``
(Rucio looks a name up in this module first, then in the generic one).
"""

from __future__ import annotations

from typing import Any

from rucio.common.schema import generic
from rucio.common.schema.schema_ref import SchemaRef

from rucio_inlet.naming import active_naming
from rucio_inlet.schema_rules import name_rules, name_schema, scope_schema, with_rules

_NAMING = active_naming()
_RULES = name_rules(_NAMING)

SCOPE_LENGTH = generic.SCOPE_LENGTH
NAME_LENGTH = generic.NAME_LENGTH

SCOPE = scope_schema(_NAMING, SchemaRef("SCOPE_LENGTH"))
# Safe in every scope (no leading '/', no '.', '..' or empty segment, ASCII, matched whole). Every
# generic schema that carries a name to create (DID, COLLECTION, ATTACHMENT, ADD_REPLICA_FILE,
# DELETE_REPLICA_FILE) refers to it as SchemaRef("NAME"), which Rucio resolves in this module
# first; R_NAME (read routes: list, delete replicas) stays generic so existing DIDs remain reachable.
NAME = name_schema(SchemaRef("NAME_LENGTH"))
# Every object that carries a (scope, name) pair that Rucio will create or attach to; the array
# schemas (dids, collections, attachments) refer to these by name, so they pick them up too.
DID = with_rules(generic.DID, _RULES)
COLLECTION = with_rules(generic.COLLECTION, _RULES)
ATTACHMENT = with_rules(generic.ATTACHMENT, _RULES)
ADD_REPLICA_FILE = with_rules(generic.ADD_REPLICA_FILE, _RULES)

SCHEMAS: dict[str, Any] = {
    **generic.SCHEMAS,
    "scope": SCOPE,
    "name": NAME,
    "did": DID,
    "collection": COLLECTION,
    "attachment": ATTACHMENT,
}
