"""Every permission action Rucio 41 knows, and how inlet decides it.

A value is either the name of the function of :mod:`rucio_inlet.permission` that decides the
action (``"perm_add_rule"``), or ``"harmless: <reason>"`` for actions left to Rucio's generic
policy because they cannot put a replica of embargoed data on a public RSE, shorten an embargo,
create DIDs in a raw scope or remove raw data. The keys are the actions of the dispatch table in
``rucio.core.permission.generic.has_permission`` plus the actions Rucio's gateway asks for that
are not in that table (generic then answers with ``perm_default``: root and 'admin' only).

tests/unit/policies/test_actions.py fails when a Rucio release adds an action not listed here,
so that someone decides about it. This module imports nothing: the test reads it without Rucio.

Trust note: only root grants ``embargo-admin`` and ``data-manager``; but accounts with Rucio's
``admin`` attribute still change RSE attributes (including ``public``) and protocols: they are
trusted as operators, as in every Rucio deployment.
"""

from __future__ import annotations

_ADMIN = "only root and 'admin' accounts (generic), who operate the lake"
_ROOT = "only root (generic)"
_NO_ROUTE = "no REST/gateway route of Rucio 41 asks for it; generic keeps it for root/'admin'"
_ACCOUNTING = "accounting, quotas or limits: moves no replica and touches no DID"
_AUTH = "authentication: proves an identity, grants nothing by itself"

ACTIONS: dict[str, str] = {
    # -- decided by rucio_inlet.permission --------------------------------------------------
    "add_rule": "perm_add_rule",
    "del_rule": "perm_del_rule",
    "reduce_rule": "perm_reduce_rule",
    "update_rule": "perm_update_rule",
    "move_rule": "perm_move_rule",
    "approve_rule": "perm_approve_rule",
    "add_attribute": "perm_add_attribute",
    "delete_replicas": "perm_delete_replicas",
    "add_replicas": "perm_add_replicas",
    "get_signed_url": "perm_get_signed_url",
    "set_metadata": "perm_set_metadata",
    "set_metadata_bulk": "perm_set_metadata_bulk",
    "add_did": "perm_add_did",
    "add_dids": "perm_add_dids",
    "create_did_sample": "perm_create_did_sample",
    "attach_dids": "perm_attach_dids",
    "attach_dids_to_dids": "perm_attach_dids_to_dids",
    "detach_dids": "perm_detach_dids",
    "add_subscription": "perm_add_subscription",
    "update_subscription": "perm_update_subscription",
    "add_opendata_did": "perm_add_opendata_did",
    "update_opendata_did": "perm_update_opendata_did",
    # -- rules and requests left to generic ------------------------------------------------------
    "access_rule_vo": "harmless: multi-VO visibility of a rule; grants no change to it",
    "queue_requests": f"harmless: {_NO_ROUTE} (generic: root only)",
    "cancel_request": f"harmless: {_NO_ROUTE} (generic: root only); cancelling copies nothing",
    "get_next": f"harmless: {_NO_ROUTE} (generic: root only)",
    "list_requests": "harmless: read-only listing of transfer requests",
    "list_requests_history": "harmless: read-only listing of transfer requests",
    "get_request_by_did": "harmless: read-only (transfer request of a DID)",
    "get_request_history_by_did": "harmless: read-only (request history of a DID)",
    "get_request_metrics": "harmless: read-only transfer metrics",
    "list_transfer_limits": "harmless: read-only listing of limits",
    "set_transfer_limit": f"harmless: {_ADMIN}; throttles transfers, decides no destination",
    "delete_transfer_limit": f"harmless: {_ADMIN}; throttles transfers, decides no destination",
    # -- replicas left to generic -----------------------------------------------------------------
    "skip_availability_check": f"harmless: {_ADMIN}; lets an allowed write ignore RSE availability flags",
    "update_replicas_states": f"harmless: {_ADMIN}; changes the state of existing replicas, creates none",
    "declare_bad_file_replicas": f"harmless: {_ROOT}; a bad replica is recovered from another copy",
    "declare_suspicious_file_replicas": "harmless: only marks a replica for checking; nothing is copied or deleted",
    "add_bad_pfns": f"harmless: {_ROOT}",
    "set_tombstone": f"harmless: {_ADMIN}; the reaper never deletes a replica a rule still locks",
    "resurrect": f"harmless: {_ADMIN}; revives deleted DIDs without replicas",
    # -- DIDs left to generic ---------------------------------------------------------------------
    "set_status": "harmless: opens/closes a collection of one's own scope (reopening is root/'admin')",
    "delete_opendata_did": "harmless: withdrawing from Open Data publishes nothing",
    "remove_did_from_followed": "harmless: notification subscription of an account",
    "remove_dids_from_followed": "harmless: notification subscription of an account",
    "add_key": f"harmless: {_ADMIN}; metadata conventions (allowed keys), not values",
    "add_value": f"harmless: {_ADMIN}; metadata conventions (allowed values), not DIDs",
    # -- accounts, identities, authentication -----------------------------------------------------
    "add_account": f"harmless: {_ROOT}",
    "del_account": f"harmless: {_ROOT}",
    "update_account": f"harmless: {_ADMIN}",
    "del_attribute": f"harmless: {_ADMIN}; removing a role takes rights away",
    "add_account_identity": f"harmless: {_ADMIN}",
    "del_account_identity": f"harmless: {_ADMIN}",
    "del_identity": "harmless: root, or an account removing its own identity",
    "get_auth_token_user_pass": f"harmless: {_AUTH}",
    "get_auth_token_gss": f"harmless: {_AUTH}",
    "get_auth_token_x509": f"harmless: {_AUTH}",
    "get_auth_token_ssh": f"harmless: {_AUTH}",
    "recover_vo_root_identity": f"harmless: {_ROOT} (multi-VO)",
    # -- scopes, RSEs, distances, QoS --------------------------------------------------------------
    "add_scope": f"harmless: {_ADMIN}; the schema (rucio_inlet.schema) decides the names",
    "update_scope": "harmless: root/'admin' or the scope's owner; scope ownership, not data",
    "add_rse": f"harmless: {_ADMIN}",
    "update_rse": f"harmless: {_ADMIN}",
    "del_rse": f"harmless: {_ADMIN}",
    "add_rse_attribute": f"harmless: {_ADMIN}; includes the 'public' attribute (operators' decision)",
    "del_rse_attribute": f"harmless: {_ADMIN}",
    "add_protocol": f"harmless: {_ADMIN}",
    "del_protocol": f"harmless: {_ADMIN}",
    "update_protocol": f"harmless: {_ADMIN}",
    "add_distance": f"harmless: {_ADMIN}",
    "update_distance": f"harmless: {_ADMIN}",
    "delete_distance": f"harmless: {_ADMIN}",
    "add_qos_policy": f"harmless: {_ADMIN}",
    "delete_qos_policy": f"harmless: {_ADMIN}",
    "set_rse_usage": f"harmless: {_ROOT}; {_ACCOUNTING}",
    "set_rse_limits": f"harmless: {_ADMIN}; {_ACCOUNTING}",
    "delete_rse_limits": f"harmless: {_ADMIN}; {_ACCOUNTING}",
    # -- accounting --------------------------------------------------------------------------------
    "set_local_account_limit": f"harmless: {_ACCOUNTING}",
    "set_global_account_limit": f"harmless: {_ACCOUNTING}",
    "delete_local_account_limit": f"harmless: {_ACCOUNTING}",
    "delete_global_account_limit": f"harmless: {_ACCOUNTING}",
    "get_local_account_usage": "harmless: read-only account usage",
    "get_global_account_usage": "harmless: read-only account usage",
    "update_lifetime_exceptions": f"harmless: {_ADMIN}; lifetime exceptions keep DIDs longer, remove nothing",
    # -- server configuration, VOs, export/import, heartbeats -------------------------------------
    "config_sections": f"harmless: {_ADMIN}",
    "config_add_section": f"harmless: {_ADMIN}",
    "config_has_section": f"harmless: {_ADMIN}",
    "config_options": f"harmless: {_ADMIN}",
    "config_has_option": f"harmless: {_ADMIN}",
    "config_get": f"harmless: {_ADMIN}",
    "config_items": f"harmless: {_ADMIN}",
    "config_set": f"harmless: {_ADMIN}",
    "config_remove_section": f"harmless: {_ADMIN}",
    "config_remove_option": f"harmless: {_ADMIN}",
    "add_vo": f"harmless: {_ROOT} (multi-VO)",
    "update_vo": f"harmless: {_ROOT} (multi-VO)",
    "list_vos": "harmless: read-only listing of VOs",
    "export": f"harmless: {_ROOT}; read-only",
    "import": f"harmless: {_ADMIN}; imports RSEs, distances and accounts, not DIDs or rules",
    "list_heartbeats": "harmless: read-only daemon heartbeats",
    "send_heartbeats": f"harmless: {_ADMIN}; daemon liveness",
}


def handled() -> dict[str, str]:
    """Action -> name of the deciding function in rucio_inlet.permission."""
    return {a: how for a, how in ACTIONS.items() if not how.startswith("harmless:")}
