"""Releasing embargoed data: find DIDs whose ``embargo_until`` has passed and give each its
public rule. Client side (it talks to Rucio's REST API with the standard client), so a cron job,
an operator or ``inlet embargo release`` can run it; the server's permission check is what
makes an early release impossible, not this code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rucio_inlet.embargo import EMBARGO_KEY, embargo_passed


@dataclass
class Release:
    scope: str
    name: str
    embargo_until: str
    #: "added" (rule_id set), "already public" (rule_id of the existing rule) or "failed" (error set).
    action: str
    rule_id: str = ""
    error: str = ""

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"


def embargoed_dids(client: Any, scope: str) -> Iterable[tuple[str, str]]:
    """(name, embargo_until) of every DID of the scope that carries an embargo."""
    for name in client.list_dids(scope, filters={EMBARGO_KEY: "*"}, did_type="all"):
        meta = client.get_metadata(scope, name, plugin="ALL")
        value = meta.get(EMBARGO_KEY)
        if value not in (None, ""):
            yield name, str(value)


def due(client: Any, scopes: Iterable[str], now: dt.datetime) -> list[tuple[str, str, str]]:
    """(scope, name, embargo_until) of the DIDs whose embargo has passed; unreadable dates never pass."""
    return [
        (scope, name, value)
        for scope in scopes
        for name, value in embargoed_dids(client, scope)
        if embargo_passed(value, now)
    ]


def release(
    client: Any,
    scopes: Iterable[str],
    rse_expression: str,
    copies: int = 1,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> list[Release]:
    """Add the public rule of every DID whose embargo passed; existing public rules are reused."""
    from rucio.common.exception import DuplicateRule, RucioException

    now = now or dt.datetime.now(dt.timezone.utc)  # noqa: UP017 - Python 3.9
    out: list[Release] = []
    for scope, name, value in due(client, scopes, now):
        existing = [r for r in client.list_did_rules(scope, name) if r["rse_expression"] == rse_expression]
        if existing:
            out.append(Release(scope, name, value, "already public", rule_id=existing[0]["id"]))
            continue
        if dry_run:
            out.append(Release(scope, name, value, "due"))
            continue
        try:
            ids = client.add_replication_rule(
                [{"scope": scope, "name": name}],
                copies,
                rse_expression,
                comment=f"public copy: {EMBARGO_KEY} {value} has passed",
            )
            out.append(Release(scope, name, value, "added", rule_id=ids[0]))
        except DuplicateRule as exc:  # another release won the race: the rule exists
            out.append(Release(scope, name, value, "already public", error=str(exc)))
        except RucioException as exc:
            out.append(Release(scope, name, value, "failed", error=f"{type(exc).__name__}: {exc}"))
    return out
