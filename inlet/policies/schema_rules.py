"""The JSON-schema fragments that encode the naming rules (kept free of Rucio imports so that
they can be checked without a Rucio configuration)."""

from __future__ import annotations

from typing import Any

from inlet.policies.naming import NamingSettings


def expected(naming: NamingSettings, scope: str) -> str:
    """What the server's refusal says a name in ``scope`` should look like."""
    examples = naming.examples(scope)
    shown = f" (e.g. {', '.join(examples)})" if examples else ""
    return f"names in scope {scope} must match one of: {', '.join(naming.name_patterns(scope))}{shown}"


def name_rules(naming: NamingSettings) -> list[dict[str, Any]]:
    """``if scope is <exp>.<tier> then name must match its patterns``, one clause per scope."""
    return [
        {
            "if": {"properties": {"scope": {"const": scope}}, "required": ["scope"]},
            "then": {
                "properties": {
                    "name": {
                        "type": "string",
                        "pattern": naming.name_regex(scope),
                        "description": expected(naming, scope),
                    }
                }
            },
        }
        for scope in naming.scopes()
    ]


def scope_schema(naming: NamingSettings, max_length: Any) -> dict[str, Any]:
    tiers = ", ".join(naming.scopes()) or "none"
    return {
        "description": f"Scope name: an experiment scope ({tiers}), user.<account>, "
        f"or a generic scope matching {naming.generic_scope_pattern}",
        "type": "string",
        "maxLength": max_length,
        "pattern": naming.scope_regex(),
    }


def with_rules(base: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {**base, "allOf": [*base.get("allOf", []), *rules]} if rules else dict(base)
