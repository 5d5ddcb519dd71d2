"""inlet's permissions: Rucio's generic policy plus raw-data protection and embargo as invariants.

Rucio has no read actions, so confidentiality of proprietary (embargoed) data is enforced where
Rucio can: where replicas may go and who gets signed URLs for private storage (collaboration
members only). The invariant, checked the same way whichever call reaches it:

    No operation of an account that is neither root nor ``embargo-admin`` may, directly or
    later, put a replica of a DID under effective embargo on a public RSE (attribute
    ``public=True``), or shorten or lift an embargo.

The *effective* embargo of a DID is the latest of its own ``embargo_until``, that of every
collection above it and the run catalogue's embargo for its run (:mod:`rucio_inlet.closure`
looks them up in bulk, following content and parents in both directions). The calls that can
break the invariant, and how each is held:

- rules: ``add_rule`` and ``move_rule`` check the closure of their DIDs when the RSE expression
  reaches a public RSE (asynchronous and delayed rules are checked when added; content attached
  later is checked by the attach rules below). ``update_rule`` has no option that changes where
  a rule's replicas go (rse_expression is not updatable in Rucio 41; ``state`` only re-evaluates
  the same expression), so it is checked for raw protection only;
- DID creation: ``add_did``/``add_dids`` with rules or an RSE check the new DID's own embargo
  and the closure of the content given in the same call. Rucio 41's gateway does not pass the
  content or the RSE of ``add_did`` to the permission check, so they are read from the
  gateway's own call frame (:func:`_gateway_args`); if that frame is not found, a public rule
  is refused (fail closed);
- attach (``attach_dids``, ``attach_dids_to_dids``): children under a collection with a public
  rule above it, or registered on a public RSE (``rse=``), are checked with their closure;
  ``detach_dids`` from a collection under embargo would lift the embargo its content inherits;
- metadata: shortening or deleting ``embargo_until`` (``set_metadata``, ``set_metadata_bulk``,
  which also serves ``set_dids_metadata_bulk``), and a lifetime on a DID under embargo (the
  undertaker would delete the collection, and its content would lose the embargo).
  ``delete_metadata`` runs no permission check in Rucio 41: :mod:`rucio_inlet.embargo_meta`
  refuses it in the metadata plugin instead;
- replica registration (``add_replicas``, ``attach_dids(rse=...)``, ``add_did(rse=...)``): no
  replica of embargoed data on a public RSE, and an explicit PFN must stay under the RSE's
  prefix (for every account: a PFN outside would let the reaper delete a foreign file);
- subscriptions: Rucio passes only the account to the check, so the rules are read from the
  gateway frame; a rule to a public RSE is refused (the transmogrifier creates a
  subscription's rules without any permission check);
- Open Data: publishing an embargoed DID as open data is refused.

Raw data: only root and data managers create DIDs or register replicas in an experiment's
protected raw scope, and only they delete, reduce, move or change the lifetime/lock/owner of
rules on raw data or tape copies. ``delete_replicas`` keeps Rucio's generic behaviour (nobody):
a replica locked by a rule must never disappear under its rule.

:data:`rucio_inlet.actions.ACTIONS` lists every action Rucio knows with how it is decided.
Every denial carries a message saying why and what would be allowed.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import rucio.core.permission.generic as generic
from rucio.common.exception import InvalidRSEExpression, RSENotFound, RuleNotFound
from rucio.core.account import has_account_attribute
from rucio.core.rse import list_rse_attributes
from rucio.core.rse_expression_parser import parse_expression

from rucio_inlet import readers
from rucio_inlet.actions import handled
from rucio_inlet.closure import Embargo, active_embargoes, closure, embargoes_of, scope_of
from rucio_inlet.embargo import EMBARGO_ADMIN, EMBARGO_KEY, PUBLIC_ATTR, parse_embargo
from rucio_inlet.naming import active_naming

if TYPE_CHECKING:
    from rucio.common.types import InternalAccount, InternalScope
    from rucio.core.permission import PermissionResult
    from sqlalchemy.orm import Session

#: Account attributes this policy reads (Rucio account attributes: `rucio account attribute add`).
DATA_MANAGER = "data-manager"
COLLABORATION = readers.COLLABORATION
#: RSE attribute (besides rse_type TAPE) marking tape storage.
TAPE_ATTR = "tape"

#: update_rule options that cannot shorten a rule's life or copies: allowed as in generic.
SAFE_RULE_UPDATES = frozenset({"priority", "activity", "comment", "boost_rule", "source_replica_expression", "meta"})

#: Beyond this many DIDs, an embargo denial names the DID holding the embargo, not the target.
_PER_TARGET = 20

_PUBLISH_HINT = (
    f"Proprietary data may only go to private RSEs until its {EMBARGO_KEY} passes (then `inlet embargo release`), "
    f"unless an account with the '{EMBARGO_ADMIN}' attribute does it."
)

Did = tuple["InternalScope", str]
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


def _OK() -> PermissionResult:
    return _result(True)


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


def _embargo_admin(issuer: InternalAccount, session: Session) -> bool:
    return _is_root(issuer) or _has(issuer, EMBARGO_ADMIN, session)


def _data_manager(issuer: InternalAccount, session: Session) -> bool:
    return _is_root(issuer) or _has(issuer, DATA_MANAGER, session)


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
    return sorted(r["rse"] for r in rses if _truthy(list_rse_attributes(r["id"], session=session).get(PUBLIC_ATTR)))


def _public_rse(rse_id: str | None, session: Session) -> str | None:
    """The RSE's name if it is public, else None."""
    if not rse_id:
        return None
    if not _truthy(list_rse_attributes(rse_id, session=session).get(PUBLIC_ATTR)):
        return None
    from rucio.core.rse import get_rse_name

    return str(get_rse_name(rse_id=rse_id, session=session))


def _gateway_args(module: str, function: str, names: Sequence[str]) -> dict[str, Any] | None:
    """Arguments of the Rucio gateway call that asked for this permission, or None if not found.

    Rucio 41 does not hand some arguments to the permission check (the content and RSE of
    ``add_did``, the files of ``add_replicas``, the rules of a subscription), yet the invariant
    depends on them. The gateway function is on the call stack of the same thread; its locals
    are read, never changed. tests/unit/policies/test_actions.py checks that these gateway
    functions still have these parameters, so a Rucio upgrade that renames them fails there.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_globals.get("__name__") == module:
            return {n: frame.f_locals.get(n) for n in names}
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _did_list(items: Iterable[dict[str, Any]] | None, vo: str) -> list[Did]:
    return [(scope_of(d["scope"], vo), str(d["name"])) for d in items or [] if "scope" in d and "name" in d]


def _label(did: Did) -> str:
    return f"{did[0].external}:{did[1]}"


def _embargo_text(target: str, e: Embargo) -> str:
    """'DID x is under embargo until ... (through y)', the start of every embargo denial."""
    catalogue = e.source != EMBARGO_KEY
    if e.until is None:
        core = (
            f"has an embargo the run catalogue could not confirm ({e.raw}), which counts as embargoed"
            if catalogue
            else f"has an unreadable {EMBARGO_KEY}={e.raw!r}, which counts as embargoed"
        )
    else:
        core = f"is under embargo until {e.until.isoformat()}" + (" in the run catalogue" if catalogue else "")
    via = "" if e.did == target else f" (through {e.did})"
    return f"DID {target} {core}{via}"


def _holder(e: Embargo) -> str:
    """Where an embargo comes from, for messages."""
    if e.source == EMBARGO_KEY:
        return f"{EMBARGO_KEY}={e.raw} on {e.did}"
    return f"the run catalogue's embargo {e.raw} for {e.did}"


def _first_embargo(targets: list[Did], session: Session, *, down: bool = True) -> tuple[str, Embargo] | None:
    """(target label, embargo) for the first target under effective embargo, or None.

    One bulk lookup for all targets; only on the denial path are targets looked at one by one,
    so the message names the DID the caller asked about."""
    found = active_embargoes(targets, session, down=down)
    if not found:
        return None
    if len(targets) == 1:
        return _label(targets[0]), found[0]
    if len(targets) <= _PER_TARGET:
        for target in targets:
            mine = active_embargoes([target], session, down=down)
            if mine:
                return _label(target), mine[0]
    return found[0].did, found[0]


# -- raw protection ----------------------------------------------------------------------------
def _protected(scope: InternalScope | str) -> bool:
    external = scope if isinstance(scope, str) else scope.external
    return external in active_naming().protected_scopes()


def _raw_creation(issuer: InternalAccount, dids: Iterable[Did], what: str, session: Session) -> PermissionResult:
    """Only root and data managers create DIDs or register replicas in a raw scope."""
    raw = [d for d in dids if _protected(d[0])]
    if not raw or _data_manager(issuer, session):
        return _OK()
    return _result(
        False,
        f"{what} in raw scope {raw[0][0].external} ({_label(raw[0])}) is reserved to root and accounts with the "
        f"'{DATA_MANAGER}' attribute: raw data come from the DAQ through the uploader. Use a scope of your own "
        f"(e.g. user.{issuer.external}).",
    )


def _protection(rule: dict[str, Any], session: Session) -> str | None:
    """Why a rule is protected, or None."""
    scope = rule["scope"].external
    if _protected(scope):
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
    if _data_manager(issuer, session):
        return _OK()
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
    """No update option of Rucio 41 changes where a rule's replicas go (see the module docstring),
    so only raw/tape protection applies."""
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
    return _rule_embargo(issuer, [(rule["scope"], rule["name"])], kwargs["rse_expression"], session)


def perm_delete_replicas(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    """Rucio's generic answer, for everyone: Rucio passes no file list here and deletes replicas
    whatever their locks, so a rule could stay OK with a lock on a replica that no longer exists."""
    return _result(
        False,
        f"Nobody deletes replicas on {kwargs.get('rse')} directly (Rucio's generic policy, kept by inlet): a replica "
        "may be locked by a rule, which would then point at nothing. Delete or reduce the rule instead; the reaper "
        "removes replicas that no rule locks.",
    )


# -- rules and embargo -------------------------------------------------------------------------
def _rule_embargo(issuer: InternalAccount, dids: list[Did], rse_expression: str, session: Session) -> PermissionResult:
    public = public_rses(rse_expression, session)
    if not public or _embargo_admin(issuer, session):
        return _OK()
    hit = _first_embargo(dids, session)
    if hit is None:
        return _OK()
    target, e = hit
    return _result(
        False,
        f"{_embargo_text(target, e)}; the RSE expression {rse_expression!r} reaches public RSE(s) "
        f"{', '.join(public)} (attribute {PUBLIC_ATTR}=True). {_PUBLISH_HINT}",
    )


def perm_add_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    if not generic.has_permission(issuer, "add_rule", kwargs, session=session):
        return _result(
            False,
            f"Account {issuer.external} may only add unlocked rules owned by itself (rule account "
            f"{kwargs['account'].external}, locked={kwargs.get('locked')}); root and 'admin' accounts may do more.",
        )
    return _rule_embargo(issuer, _did_list(kwargs["dids"], issuer.vo), kwargs["rse_expression"], session)


def perm_approve_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    """A rule waiting for approval was checked when it was asked for; its content may have become
    embargoed since, so the approver's check runs again on what the rule would copy now."""
    result = _generic(issuer, "approve_rule", kwargs, session)
    if not result:
        return result
    rule = _rule(kwargs, session)
    if rule is None:
        return result
    return _rule_embargo(issuer, [(rule["scope"], rule["name"])], rule["rse_expression"], session)


def perm_get_signed_url(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    # The decision inlet's own readers ask too (rucio_inlet.readers), with Rucio's attribute lookup.
    if readers.reads_private(issuer.external, lambda key: _has(issuer, key, session)):
        return _OK()
    return _result(
        False,
        f"Signed URLs give access to private storage and are given only to collaboration members: account "
        f"{issuer.external} lacks the '{COLLABORATION}' attribute. Public RSEs are readable without a signature.",
    )


# -- metadata ----------------------------------------------------------------------------------
def _embargo_change(
    issuer: InternalAccount, scope: InternalScope, name: str, new: object, session: Session
) -> PermissionResult | None:
    """Shortening or lifting an embargo is an embargo admin's decision; setting or extending one is not."""
    if _embargo_admin(issuer, session):
        return None
    did = f"{scope.external}:{name}"
    current = [e for e in embargoes_of([(scope, name)], session) if e.did == did and e.source == EMBARGO_KEY]
    if not current:
        return None
    try:
        until = parse_embargo(new) if new not in (None, "") else None
    except ValueError as exc:
        return _result(False, str(exc))
    if current[0].until is not None and until is not None and until >= current[0].until:
        return None
    return _result(
        False,
        f"{EMBARGO_KEY} of {did} is {current[0].raw}; only root and accounts with the '{EMBARGO_ADMIN}' "
        "attribute may shorten or lift an embargo (extending it is allowed).",
    )


#: DID metadata (Rucio's DID columns) that make the undertaker delete a DID: a deleted collection
#: no longer passes its embargo down to its content.
EXPIRY_KEYS = frozenset({"lifetime", "expired_at"})


def _expiry_change(
    issuer: InternalAccount, scope: InternalScope, name: str, session: Session
) -> PermissionResult | None:
    if _embargo_admin(issuer, session):
        return None
    hit = _first_embargo([(scope, name)], session, down=False)
    if hit is None:
        return None
    target, e = hit
    return _result(
        False,
        f"{_embargo_text(target, e)}; giving it a lifetime would lift, when the undertaker deletes it, the embargo "
        f"its content inherits. Only root and accounts with the '{EMBARGO_ADMIN}' attribute may.",
    )


def _metadata_change(
    issuer: InternalAccount, kwargs: dict[str, Any], meta: dict[str, Any], session: Session
) -> PermissionResult | None:
    if EMBARGO_KEY in meta:
        denied = _embargo_change(issuer, kwargs["scope"], kwargs["name"], meta[EMBARGO_KEY], session)
        if denied is not None:
            return denied
    if EXPIRY_KEYS & set(meta) and any(meta[k] is not None for k in EXPIRY_KEYS & set(meta)):
        return _expiry_change(issuer, kwargs["scope"], kwargs["name"], session)
    return None


def perm_set_metadata(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    denied = _metadata_change(issuer, kwargs, {str(kwargs.get("key")): kwargs.get("value")}, session)
    if denied is not None:
        return denied
    return _generic(issuer, "set_metadata", kwargs, session)


def perm_set_metadata_bulk(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    """Also the check of every entry of ``set_dids_metadata_bulk`` (Rucio uses this action there)."""
    denied = _metadata_change(issuer, kwargs, dict(kwargs.get("meta") or {}), session)
    if denied is not None:
        return denied
    return _generic(issuer, "set_metadata_bulk", kwargs, session)


# -- replica registration ----------------------------------------------------------------------
def _pfn_outside(rse_id: str, pfns: list[str], session: Session) -> str | None:
    """Why one of these PFNs does not lie under a protocol prefix of the RSE, or None."""
    if not pfns:
        return None
    from rucio.core.rse import get_rse_protocols

    info = get_rse_protocols(rse_id, session=session)
    bases = []
    for p in info.get("protocols") or []:
        ext = p.get("extended_attributes") or {}
        web = ext.get("web_service_path", "") if isinstance(ext, dict) else ""
        base = posixpath.normpath("/" + "/".join(x.strip("/") for x in (web or "", p.get("prefix") or "") if x))
        bases.append((str(p.get("scheme")), str(p.get("hostname") or ""), int(p.get("port") or 0), base))
    for pfn in pfns:
        url = urlparse(str(pfn))
        segments = url.path.split("/")
        if ".." in segments or "." in segments or any(ord(c) < 32 for c in str(pfn)):
            return f"PFN {pfn!r} has a '.' or '..' segment or a control character"
        path = posixpath.normpath(url.path or "/")
        ok = any(
            url.scheme == scheme
            and (not host or (url.hostname or "") == host)
            and (not port or (url.port or port) == port)
            and (path == base or path.startswith(base.rstrip("/") + "/"))
            for scheme, host, port, base in bases
        )
        if not ok:
            where = ", ".join(f"{s}://{h}{':' + str(p) if p else ''}{b}/" for s, h, p, b in bases) or "no protocol"
            return f"PFN {pfn!r} lies outside the RSE's storage ({where})"
    return None


def _derived_pfns(rse_id: str, dids: list[Did], session: Session) -> list[str]:
    """The PFNs Rucio derives (lfn2pfn) for replicas registered without one on a deterministic RSE.

    Checked like explicit PFNs, so that a name whose path escapes its place (``..``) cannot alias
    another file, whatever the naming schema lets through. An RSE whose PFNs cannot be derived
    here (no write protocol) is left to Rucio, which fails the registration itself."""
    if not dids:
        return []
    from rucio.common.exception import RucioException
    from rucio.rse import rsemanager

    try:
        info = rsemanager.get_rse_info(rse_id=rse_id, session=session)
        if not info.get("deterministic", True):
            return []
        lfns = [{"scope": s.external, "name": n} for s, n in dids]
        return [str(p) for p in rsemanager.lfns2pfns(info, lfns, operation="write").values()]
    except RucioException:
        return []


def _registration(
    issuer: InternalAccount, files: list[dict[str, Any]], rse_id: str | None, parents: list[Did], session: Session
) -> PermissionResult:
    """Registering replicas of ``files`` on an RSE (as content of ``parents``, if any)."""
    if not rse_id or not files:
        return _OK()
    dids = _did_list(files, issuer.vo)
    verdict = _raw_creation(issuer, dids, "Registering replicas", session)
    if not verdict:
        return verdict
    pfns = [str(f["pfn"]) for f in files if f.get("pfn")]
    pfns += _derived_pfns(rse_id, _did_list([f for f in files if not f.get("pfn")], issuer.vo), session)
    outside = _pfn_outside(rse_id, pfns, session)
    if outside is not None:
        return _result(
            False,
            f"{outside}: a replica must be a file of the RSE it is registered on. Register it without a PFN "
            "(Rucio derives it) or with the PFN Rucio gives (`rucio replica list file` / lfns2pfns).",
        )
    public = _public_rse(rse_id, session)
    if public is None or _embargo_admin(issuer, session):
        return _OK()
    hit = _first_embargo(dids, session, down=False) or _first_embargo(parents, session, down=False)
    if hit is None:
        return _OK()
    target, e = hit
    return _result(
        False,
        f"{_embargo_text(target, e)}; registering a replica of it on public RSE {public} (attribute "
        f"{PUBLIC_ATTR}=True) would publish it. {_PUBLISH_HINT}",
    )


def perm_add_replicas(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "add_replicas", kwargs, session)
    if not result:
        return result
    args = _gateway_args("rucio.gateway.replica", "add_replicas", ("files",))
    if args is None:
        if _public_rse(kwargs.get("rse_id"), session) and not _embargo_admin(issuer, session):
            return _result(False, "add_replicas on a public RSE: the files could not be checked for embargo.")
        return _OK()
    return _registration(issuer, list(args["files"] or []), kwargs.get("rse_id"), [], session)


# -- DID creation ------------------------------------------------------------------------------
def _creation(
    issuer: InternalAccount,
    did: dict[str, Any],
    content: list[dict[str, Any]] | None,
    rse_id: str | None,
    session: Session,
) -> PermissionResult:
    """A new DID, maybe with content, rules and an RSE to register the content's replicas on.

    ``content`` None means the content could not be seen: rules to public RSEs are then refused."""
    scope = scope_of(did["scope"], issuer.vo)
    me = (scope, str(did["name"]))
    verdict = _raw_creation(issuer, [me], "Creating a DID", session)
    if not verdict:
        return verdict
    verdict = _registration(issuer, content or [], rse_id, [me], session)
    if not verdict:
        return verdict
    public = sorted(
        {r for rule in did.get("rules") or [] for r in public_rses(str(rule.get("rse_expression")), session)}
    )
    how = "a rule to"
    registered_on = _public_rse(rse_id, session) if content else None
    if not public and registered_on:
        public, how = [registered_on], "its content registered on"
    if not public or _embargo_admin(issuer, session):
        return _OK()
    meta = did.get("meta") or {}
    if meta.get(EMBARGO_KEY) not in (None, ""):
        try:
            active = parse_embargo(meta[EMBARGO_KEY]) > dt.datetime.now(dt.timezone.utc)
        except ValueError:
            active = True
        if active:
            return _result(
                False,
                f"DID {_label(me)} is created under embargo ({EMBARGO_KEY}={meta[EMBARGO_KEY]}) with {how} "
                f"public RSE(s) {', '.join(public)} (attribute {PUBLIC_ATTR}=True); create it with rules to private "
                f"RSEs only, or ask an account with the '{EMBARGO_ADMIN}' attribute.",
            )
    if content is None:
        return _result(
            False,
            f"DID {_label(me)} is created with a rule to public RSE(s) {', '.join(public)}, and its content could "
            "not be checked for embargo; create the DID, attach its content, then add the rule (each is checked).",
        )
    hit = _first_embargo([me, *_did_list(content, issuer.vo)], session)
    if hit is None:
        return _OK()
    target, e = hit
    return _result(
        False,
        f"{_embargo_text(target, e)}; it would become content of the new DID {_label(me)}, created with {how} "
        f"public RSE(s) {', '.join(public)} (attribute {PUBLIC_ATTR}=True). {_PUBLISH_HINT}",
    )


def perm_add_did(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "add_did", kwargs, session)
    if not result:
        return result
    if "dids" in kwargs or "rse_id" in kwargs:  # an entry of add_dids: everything is there
        return _creation(issuer, kwargs, list(kwargs.get("dids") or []), kwargs.get("rse_id"), session)
    args = _gateway_args("rucio.gateway.did", "add_did", ("dids", "rse"))
    if args is None:
        return _creation(issuer, kwargs, None, None, session)
    rse_id = None
    if args["rse"]:
        from rucio.core.rse import get_rse_id

        try:
            rse_id = get_rse_id(rse=args["rse"], vo=issuer.vo, session=session)
        except RSENotFound:
            return _OK()  # Rucio reports the unknown RSE itself
    return _creation(issuer, kwargs, list(args["dids"] or []), rse_id, session)


def perm_add_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    # Entries carry their content and RSE (for add_replicas' new files, the registration itself
    # is checked by perm_add_replicas); "dids" marks them as entries for perm_add_did.
    # Rucio's bulk add_dids never runs the DID schema, so the naming rules are applied here, to
    # every account: the same decision the schema makes on the other routes.
    naming = active_naming()
    for did in kwargs["dids"]:
        for item in [did, *(did.get("dids") or [])]:
            scope = item.get("scope")
            problem = naming.did_problem(str(getattr(scope, "external", scope)), str(item.get("name")))
            if problem is not None:
                return _result(False, f"Refused name {problem}; rename the DID to follow the naming rules.")
        entry = {**did}
        entry.setdefault("dids", [])
        result = perm_add_did(issuer, entry, session)
        if not result:
            return result
    return _OK()


def perm_create_did_sample(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "create_did_sample", kwargs, session)
    if not result:
        return result
    return _raw_creation(issuer, [(kwargs["scope"], "<sample>")], "Creating a DID", session)


# -- attach and detach -------------------------------------------------------------------------
def _public_rules_above(parent: Did, session: Session) -> list[tuple[str, list[str]]]:
    """(rule id, public RSEs) of the rules on a collection or any collection above it."""
    from rucio.db.sqla import models
    from sqlalchemy import select, tuple_

    dids = closure([parent], session, down=False)
    rule = models.ReplicationRule
    found = []
    for i in range(0, len(dids), 500):
        stmt = select(rule.id, rule.rse_expression).where(tuple_(rule.scope, rule.name).in_(dids[i : i + 500]))
        for row in session.execute(stmt):
            public = public_rses(row.rse_expression, session)
            if public:
                found.append((str(row.id), public))
    return found


def _attach(issuer: InternalAccount, parent: Did, attachment: dict[str, Any], session: Session) -> PermissionResult:
    children = list(attachment.get("dids") or [])
    verdict = _registration(issuer, children, attachment.get("rse_id"), [parent], session)
    if not verdict or _embargo_admin(issuer, session):
        return verdict
    rules = _public_rules_above(parent, session)
    if not rules:
        return _OK()
    hit = _first_embargo(_did_list(children, issuer.vo), session) or _first_embargo([parent], session, down=False)
    if hit is None:
        return _OK()
    target, e = hit
    rule_id, public = rules[0]
    return _result(
        False,
        f"Attaching {target} (under embargo: {_holder(e)}) to {_label(parent)} would copy "
        f"it to public RSE(s) {', '.join(public)} through rule {rule_id}. Attach it to a collection without public "
        "rules, or wait for the embargo to end.",
    )


def perm_attach_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "attach_dids", kwargs, session)
    if not result:
        return result
    return _attach(issuer, (kwargs["scope"], str(kwargs["name"])), kwargs.get("attachment") or {}, session)


def perm_attach_dids_to_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, "attach_dids_to_dids", kwargs, session)
    if not result:
        return result
    for attachment in kwargs.get("attachments") or []:
        parent = (scope_of(attachment["scope"], issuer.vo), str(attachment["name"]))
        verdict = _attach(issuer, parent, attachment, session)
        if not verdict:
            return verdict
    return _OK()


def perm_detach_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    """Detaching content from a collection under embargo would lift the embargo it inherits."""
    result = _generic(issuer, "detach_dids", kwargs, session)
    if not result or _embargo_admin(issuer, session):
        return result
    parent = (kwargs["scope"], str(kwargs["name"]))
    hit = _first_embargo([parent], session, down=False)
    if hit is None:
        return _OK()
    target, e = hit
    return _result(
        False,
        f"{_embargo_text(target, e)}; detaching content from it would lift the embargo that content inherits. "
        f"Only root and accounts with the '{EMBARGO_ADMIN}' attribute may.",
    )


# -- subscriptions and open data ---------------------------------------------------------------
def _subscription(issuer: InternalAccount, action: str, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, action, kwargs, session)
    if not result or _embargo_admin(issuer, session):
        return result
    if action == "add_subscription":
        args = _gateway_args("rucio.gateway.subscription", "add_subscription", ("replication_rules",))
        rules = None if args is None else args["replication_rules"]
    else:
        args = _gateway_args("rucio.gateway.subscription", "update_subscription", ("name", "metadata"))
        metadata = (args or {}).get("metadata") or {}
        if args is None:
            rules = None
        elif metadata.get("replication_rules"):
            rules = metadata["replication_rules"]
        else:
            # A new filter with the old rules can aim a public rule at embargoed data too.
            rules = _subscription_rules(str(args["name"]), kwargs.get("account"), session)
    if rules is None:
        return _result(False, f"{action}: the subscription's rules could not be checked for public RSEs.")
    for rule in rules if isinstance(rules, list) else []:
        public = public_rses(str(rule.get("rse_expression", "")), session)
        if public:
            return _result(
                False,
                f"A subscription's rules are created by the transmogrifier without any permission check, so one "
                f"that reaches public RSE(s) {', '.join(public)} (attribute {PUBLIC_ATTR}=True) could publish "
                f"embargoed data: only root and accounts with the '{EMBARGO_ADMIN}' attribute may add or update it. "
                "Use private RSEs; `inlet embargo release` publishes data whose embargo has passed.",
            )
    return _OK()


def _subscription_rules(name: str, account: Any, session: Session) -> list[dict[str, Any]] | None:
    """The replication rules a subscription has now (None if it cannot be read)."""
    import json

    from rucio.common.exception import SubscriptionNotFound
    from rucio.core.subscription import list_subscriptions

    try:
        subs = list(list_subscriptions(name=name, account=account, session=session))
    except SubscriptionNotFound:
        return []  # Rucio reports the unknown subscription itself
    rules: list[dict[str, Any]] = []
    for sub in subs:
        raw = sub.get("replication_rules")
        try:
            loaded = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return None
        rules.extend(r for r in loaded or [] if isinstance(r, dict))
    return rules


def perm_add_subscription(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    return _subscription(issuer, "add_subscription", kwargs, session)


def perm_update_subscription(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    return _subscription(issuer, "update_subscription", kwargs, session)


def _opendata(issuer: InternalAccount, action: str, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    result = _generic(issuer, action, kwargs, session)
    if not result or _embargo_admin(issuer, session):
        return result
    hit = _first_embargo([(kwargs["scope"], str(kwargs["name"]))], session)
    if hit is None:
        return _OK()
    target, e = hit
    return _result(False, f"{_embargo_text(target, e)}; it cannot be published as Open Data. {_PUBLISH_HINT}")


def perm_add_opendata_did(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    return _opendata(issuer, "add_opendata_did", kwargs, session)


def perm_update_opendata_did(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    return _opendata(issuer, "update_opendata_did", kwargs, session)


# -- roles ------------------------------------------------------------------------------------
def perm_add_attribute(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> PermissionResult:
    """The roles that lift inlet's protections are root's to grant: in generic Rucio any 'admin'
    account may grant attributes, which would let an operator make itself an embargo admin."""
    result = _generic(issuer, "add_attribute", kwargs, session)
    if not result or _is_root(issuer) or kwargs.get("key") not in (EMBARGO_ADMIN, DATA_MANAGER):
        return result
    return _result(
        False,
        f"The '{kwargs.get('key')}' attribute lifts inlet's embargo or raw-data protection: only root grants it.",
    )


#: Every action inlet decides itself, from the table of all Rucio actions (rucio_inlet.actions).
_CHECKS: dict[str, Check] = {action: globals()[function] for action, function in handled().items()}
