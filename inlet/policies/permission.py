"""inlet's permissions: Rucio's generic policy plus raw-data protection and embargo.

Rucio has no read actions, so confidentiality of proprietary (embargoed) data is enforced where
Rucio can: where replicas may go (no rule to a public RSE before the embargo ends) and who gets
signed URLs for private storage (collaboration members only). Raw data is protected against
accidental deletion: only data managers and root may delete or shrink its rules or replicas.

Embargo holes closed besides ``add_rule``: ``move_rule`` to a public RSE, a DID created with an
embargo and a public rule in the same call, attaching embargoed data under a collection that has
a public rule, and shortening or lifting ``embargo_until`` (embargo admins only). Data managers
may also delete, reduce, move and update other accounts' rules outside raw data (Rucio's generic
policy keeps that for 'admin' accounts), since curating copies is their job.

Every action not changed here is decided by ``rucio.core.permission.generic``; every denial
carries a message saying why and what would be allowed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import rucio.core.permission.generic as generic
from rucio.common.exception import DataIdentifierNotFound, InvalidRSEExpression, RSENotFound, RuleNotFound
from rucio.core.account import has_account_attribute
from rucio.core.rse import list_rse_attributes
from rucio.core.rse_expression_parser import parse_expression

from inlet.policies.embargo import EMBARGO_ADMIN, EMBARGO_KEY, PUBLIC_ATTR, parse_embargo
from inlet.policies.naming import active_naming

if TYPE_CHECKING:
    from rucio.common.types import InternalAccount, InternalScope
    from rucio.core.permission import PermissionResult
    from sqlalchemy.orm import Session

#: Account attributes this policy reads (Rucio account attributes: `rucio account attribute add`).
DATA_MANAGER = "data-manager"
COLLABORATION = "collaboration"
#: RSE attribute (besides rse_type TAPE) marking tape storage.
TAPE_ATTR = "tape"

#: update_rule options that cannot shorten a rule's life or copies: allowed as in generic.
SAFE_RULE_UPDATES = frozenset({"priority", "activity", "comment", "boost_rule", "source_replica_expression", "meta"})

Check = Callable[["InternalAccount", dict[str, Any], "Session"], "PermissionResult | bool"]


def has_permission(
    issuer: InternalAccount, action: str, kwargs: dict[str, Any], session: Session
) -> PermissionResult | bool:
    check = _CHECKS.get(action)
    if check is not None:
        return check(issuer, kwargs, session)
    return _generic(issuer, action, kwargs, session)


# -- helpers ---------------------------------------------------------------------------------
def _result(allowed: bool, message: str = "") -> PermissionResult:
    # Imported late: Rucio imports this module while rucio.core.permission is still initialising.
    from rucio.core.permission import PermissionResult

    return PermissionResult(allowed, message)


def _generic(issuer: InternalAccount, action: str, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    allowed = generic.has_permission(issuer, action, kwargs, session=session)
    if allowed:
        return _result(True)
    return _result(
        False,
        f"Rucio's generic policy denies '{action}' to account {issuer.external}: it keeps such actions for root "
        "and accounts with the 'admin' attribute (some also for the owner of the scope).",
    )


def _is_root(issuer: InternalAccount) -> bool:
    return bool(issuer.external == "root")


def _has(issuer: InternalAccount, key: str, session: Session) -> bool:
    return bool(has_account_attribute(account=issuer, key=key, session=session))


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _rses(expression: str, session: Session) -> list[dict[str, Any]]:
    try:
        return list(parse_expression(expression, session=session))
    except (InvalidRSEExpression, RSENotFound):
        return []  # Rucio's own rule code reports the bad expression precisely.


def _is_tape(rse: dict[str, Any], session: Session) -> bool:
    rse_type = rse.get("rse_type")
    if str(getattr(rse_type, "name", rse_type)).upper() == "TAPE":
        return True
    return _truthy(list_rse_attributes(rse["id"], session=session).get(TAPE_ATTR))


def public_rses(expression: str, session: Session) -> list[str]:
    rses = _rses(expression, session)
    return [r["rse"] for r in rses if _truthy(list_rse_attributes(r["id"], session=session).get(PUBLIC_ATTR))]


# -- embargo lookup ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Embargo:
    did: str
    raw: object
    until: dt.datetime | None  # None: unparseable, which counts as embargoed (fail closed)

    def active(self, now: dt.datetime) -> bool:
        return self.until is None or self.until > now


def _related_dids(scope: InternalScope, name: str, session: Session) -> list[tuple[InternalScope, str]]:
    """The DID, every collection above it, and everything below it: a rule on any of them would
    copy the embargoed bytes, and an embargo set on a dataset covers its files."""
    from rucio.core.did import list_all_parent_dids, list_content

    seen: dict[tuple[str, str], tuple[InternalScope, str]] = {}

    def add(s: InternalScope, n: str) -> bool:
        key = (s.internal, n)
        if key in seen:
            return False
        seen[key] = (s, n)
        return True

    add(scope, name)
    for parent in list_all_parent_dids(scope=scope, name=name, session=session):
        add(parent["scope"], parent["name"])
    todo = [(scope, name)]
    while todo:
        s, n = todo.pop()
        for child in list_content(scope=s, name=n, session=session):
            if add(child["scope"], child["name"]) and str(getattr(child["type"], "name", child["type"])) != "FILE":
                todo.append((child["scope"], child["name"]))
    return list(seen.values())


def _json_plugin_holds_embargo(session: Session) -> bool:
    """Whether Rucio's JSON plugin (table did_meta) stores embargo_until, as by default."""
    from rucio.core.did_meta_plugins import METADATA_PLUGIN_MODULES

    for plugin in METADATA_PLUGIN_MODULES:
        if plugin.manages_key(EMBARGO_KEY, session=session):
            return type(plugin).__name__ == "JSONDidMeta"
    return False


def _metadata(dids: list[tuple[InternalScope, str]], session: Session) -> Iterator[tuple[str, dict[str, Any]]]:
    if _json_plugin_holds_embargo(session):
        # One query per 500 DIDs instead of one per DID: a run dataset holds thousands of files.
        from rucio.db.sqla import models
        from sqlalchemy import select, tuple_

        for i in range(0, len(dids), 500):
            chunk = dids[i : i + 500]
            stmt = select(models.DidMeta.scope, models.DidMeta.name, models.DidMeta.meta).where(
                tuple_(models.DidMeta.scope, models.DidMeta.name).in_(chunk)
            )
            for row in session.execute(stmt):
                meta = row.meta if isinstance(row.meta, dict) else {}
                yield f"{row.scope.external}:{row.name}", meta
    else:
        from rucio.core.did_meta_plugins import get_metadata

        for s, n in dids:
            yield f"{s.external}:{n}", get_metadata(s, n, plugin="ALL", session=session)


def embargoes(scope: InternalScope, name: str, session: Session) -> list[Embargo]:
    try:
        dids = _related_dids(scope, name, session)
    except DataIdentifierNotFound:
        return []  # the rule code raises its own precise error for a missing DID
    found = []
    for did, meta in _metadata(dids, session):
        if meta.get(EMBARGO_KEY) in (None, ""):
            continue
        raw = meta[EMBARGO_KEY]
        try:
            until: dt.datetime | None = parse_embargo(raw)
        except ValueError:
            until = None
        found.append(Embargo(did, raw, until))
    return found


def _embargo_check(
    issuer: InternalAccount, dids: Iterable[dict[str, Any]], rse_expression: str, session: Session
) -> PermissionResult:
    if _is_root(issuer) or _has(issuer, EMBARGO_ADMIN, session):
        return _result(True)
    public = public_rses(rse_expression, session)
    if not public:
        return _result(True)
    now = dt.datetime.now(dt.UTC)
    for did in dids:
        for e in embargoes(did["scope"], did["name"], session):
            if not e.active(now):
                continue
            target = f"{did['scope'].external}:{did['name']}"
            via = "" if e.did == target else f" (through {e.did})"
            when = (
                f"is under embargo until {e.until.isoformat()}"
                if e.until
                else f"has an unreadable {EMBARGO_KEY}={e.raw!r}, which counts as embargoed"
            )
            return _result(
                False,
                f"DID {target} {when}{via}; the RSE expression {rse_expression!r} reaches public RSE(s) "
                f"{', '.join(sorted(public))} (attribute {PUBLIC_ATTR}=True). Proprietary data may only go to "
                f"private RSEs until its {EMBARGO_KEY} passes (then `inlet embargo release`), unless an account "
                f"with the '{EMBARGO_ADMIN}' attribute does it.",
            )
    return _result(True)


# -- raw protection ----------------------------------------------------------------------------
def _protection(rule: dict[str, Any], session: Session) -> str | None:
    """Why a rule is protected, or None."""
    scope = rule["scope"].external
    if scope in active_naming().protected_scopes():
        return f"its scope {scope} holds raw data"
    tapes = [r["rse"] for r in _rses(rule["rse_expression"], session) if _is_tape(r, session)]
    if tapes:
        return f"it keeps copies on TAPE ({', '.join(tapes)})"
    return None


def _rule(kwargs: dict[str, Any], session: Session) -> dict[str, Any] | None:
    from rucio.core.rule import get_rule

    try:
        rule: dict[str, Any] = get_rule(kwargs["rule_id"], session=session)
        return rule
    except RuleNotFound:
        return None


def _guarded_rule_action(
    issuer: InternalAccount, kwargs: dict[str, Any], session: Session, action: str, verb: str
) -> PermissionResult:
    if _is_root(issuer) or _has(issuer, DATA_MANAGER, session):
        return _result(True)
    rule = _rule(kwargs, session)
    if rule is not None:
        why = _protection(rule, session)
        if why is not None:
            return _result(
                False,
                f"Rule {kwargs['rule_id']} on {rule['scope'].external}:{rule['name']} is protected because {why}: "
                f"only root and accounts with the '{DATA_MANAGER}' attribute may {verb} it.",
            )
    return _generic(issuer, action, kwargs, session)


def perm_del_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    return _guarded_rule_action(issuer, kwargs, session, "del_rule", "delete")


def perm_reduce_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    return _guarded_rule_action(issuer, kwargs, session, "reduce_rule", "reduce the copies of")


def perm_update_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    if set(kwargs.get("options") or {}) <= SAFE_RULE_UPDATES:
        return _generic(issuer, "update_rule", kwargs, session)
    return _guarded_rule_action(issuer, kwargs, session, "update_rule", "change the lifetime, lock or owner of")


def perm_move_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _guarded_rule_action(issuer, kwargs, session, "move_rule", "move")
    if not result:
        return result
    rule = _rule(kwargs, session)
    if rule is None:
        return result
    return _embargo_check(issuer, [{"scope": rule["scope"], "name": rule["name"]}], kwargs["rse_expression"], session)


def perm_delete_replicas(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    # Rucio passes no file list here, so raw replicas cannot be told apart: only the accounts
    # allowed to delete raw data may delete replicas at all (generic Rucio allows nobody).
    if _is_root(issuer) or _has(issuer, DATA_MANAGER, session):
        return _result(True)
    return _result(
        False,
        f"Deleting replicas on {kwargs.get('rse')} is reserved to root and accounts with the '{DATA_MANAGER}' "
        "attribute, because they may be raw data; remove your rule instead and let the reaper clean up.",
    )


# -- rules and embargo -------------------------------------------------------------------------
def perm_add_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    if not generic.has_permission(issuer, "add_rule", kwargs, session=session):
        return _result(
            False,
            f"Account {issuer.external} may only add unlocked rules owned by itself (rule account "
            f"{kwargs['account'].external}, locked={kwargs.get('locked')}); root and 'admin' accounts may do more.",
        )
    return _embargo_check(issuer, kwargs["dids"], kwargs["rse_expression"], session)


def perm_get_signed_url(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    if _is_root(issuer) or _has(issuer, COLLABORATION, session):
        return _result(True)
    return _result(
        False,
        f"Signed URLs give access to private storage and are given only to collaboration members: account "
        f"{issuer.external} lacks the '{COLLABORATION}' attribute. Public RSEs are readable without a signature.",
    )


def _embargo_change(
    issuer: InternalAccount, scope: InternalScope, name: str, new: object, session: Session
) -> PermissionResult | None:
    """Shortening or lifting an embargo is an embargo admin's decision; setting or extending one is not."""
    if _is_root(issuer) or _has(issuer, EMBARGO_ADMIN, session):
        return None
    current = [e for e in embargoes(scope, name, session) if e.did == f"{scope.external}:{name}"]
    if not current or current[0].until is None:
        return None
    try:
        shorter = new in (None, "") or parse_embargo(new) < current[0].until
    except ValueError as exc:
        return _result(False, str(exc))
    if shorter:
        return _result(
            False,
            f"{EMBARGO_KEY} of {scope.external}:{name} is {current[0].raw}; only root and accounts with the "
            f"'{EMBARGO_ADMIN}' attribute may shorten or lift an embargo (extending it is allowed).",
        )
    return None


def perm_set_metadata(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    if kwargs.get("key") == EMBARGO_KEY:
        denied = _embargo_change(issuer, kwargs["scope"], kwargs["name"], kwargs.get("value"), session)
        if denied is not None:
            return denied
    return _generic(issuer, "set_metadata", kwargs, session)


def perm_set_metadata_bulk(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    meta = kwargs.get("meta") or {}
    if EMBARGO_KEY in meta:
        denied = _embargo_change(issuer, kwargs["scope"], kwargs["name"], meta[EMBARGO_KEY], session)
        if denied is not None:
            return denied
    return _generic(issuer, "set_metadata_bulk", kwargs, session)


def _creation_check(issuer: InternalAccount, did: dict[str, Any], session: Session) -> PermissionResult:
    """A DID created with an embargo and, in the same call, a rule to a public RSE."""
    meta = did.get("meta") or {}
    if meta.get(EMBARGO_KEY) in (None, "") or _is_root(issuer) or _has(issuer, EMBARGO_ADMIN, session):
        return _result(True)
    try:
        active = parse_embargo(meta[EMBARGO_KEY]) > dt.datetime.now(dt.UTC)
    except ValueError:
        active = True
    if not active:
        return _result(True)
    for rule in did.get("rules") or []:
        public = public_rses(str(rule.get("rse_expression", "")), session)
        if public:
            return _result(
                False,
                f"DID {did['scope'].external}:{did['name']} is created under embargo ({EMBARGO_KEY}="
                f"{meta[EMBARGO_KEY]}) with a rule to public RSE(s) {', '.join(sorted(public))} (attribute "
                f"{PUBLIC_ATTR}=True); create it with rules to private RSEs only, or ask an account with the "
                f"'{EMBARGO_ADMIN}' attribute.",
            )
    return _result(True)


def perm_add_did(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "add_did", kwargs, session)
    return _creation_check(issuer, kwargs, session) if result else result


def perm_add_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    for did in kwargs["dids"]:
        result = perm_add_did(issuer, did, session)
        if not result:
            return result
    return _result(True)


def _public_rules_above(scope: InternalScope, name: str, session: Session) -> list[tuple[str, list[str]]]:
    """(rule id, public RSEs) of the rules on a collection or any collection above it."""
    from rucio.core.did import list_all_parent_dids
    from rucio.db.sqla import models
    from sqlalchemy import and_, or_, select

    dids = [(scope, name)] + [
        (p["scope"], p["name"]) for p in list_all_parent_dids(scope=scope, name=name, session=session)
    ]
    stmt = select(models.ReplicationRule.id, models.ReplicationRule.rse_expression).where(
        or_(*(and_(models.ReplicationRule.scope == s, models.ReplicationRule.name == n) for s, n in dids))
    )
    found = []
    for row in session.execute(stmt):
        public = public_rses(row.rse_expression, session)
        if public:
            found.append((str(row.id), public))
    return found


def _attach_check(
    issuer: InternalAccount, scope: InternalScope, name: str, children: list[dict[str, Any]], session: Session
) -> PermissionResult:
    """Attaching embargoed data under a collection that already has a public rule would publish it."""
    from rucio.common.types import InternalScope as Scope

    if _is_root(issuer) or _has(issuer, EMBARGO_ADMIN, session):
        return _result(True)
    rules = _public_rules_above(scope, name, session)
    if not rules:
        return _result(True)
    now = dt.datetime.now(dt.UTC)
    for child in children:
        child_scope = child["scope"] if isinstance(child["scope"], Scope) else Scope(child["scope"], vo=issuer.vo)
        for e in embargoes(child_scope, child["name"], session):
            if e.active(now):
                rule_id, public = rules[0]
                return _result(
                    False,
                    f"Attaching {child_scope.external}:{child['name']} (under embargo: {EMBARGO_KEY}={e.raw} "
                    f"on {e.did}) to {scope.external}:{name} would copy it to public RSE(s) {', '.join(public)} "
                    f"through rule {rule_id}. Attach it to a collection without public rules, "
                    "or wait for the embargo to end.",
                )
    return _result(True)


def perm_attach_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "attach_dids", kwargs, session)
    if not result:
        return result
    children = (kwargs.get("attachment") or {}).get("dids") or []
    return _attach_check(issuer, kwargs["scope"], kwargs["name"], children, session)


def perm_attach_dids_to_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "attach_dids_to_dids", kwargs, session)
    if not result:
        return result
    for attachment in kwargs.get("attachments") or []:
        verdict = _attach_check(issuer, attachment["scope"], attachment["name"], attachment.get("dids") or [], session)
        if not verdict:
            return verdict
    return _result(True)


_CHECKS: dict[str, Check] = {
    "add_rule": perm_add_rule,
    "del_rule": perm_del_rule,
    "reduce_rule": perm_reduce_rule,
    "update_rule": perm_update_rule,
    "move_rule": perm_move_rule,
    "delete_replicas": perm_delete_replicas,
    "get_signed_url": perm_get_signed_url,
    "set_metadata": perm_set_metadata,
    "set_metadata_bulk": perm_set_metadata_bulk,
    "add_did": perm_add_did,
    "add_dids": perm_add_dids,
    "attach_dids": perm_attach_dids,
    "attach_dids_to_dids": perm_attach_dids_to_dids,
}
