"""The JSON-schema fragments that encode the naming rules (kept free of Rucio imports so that
they can be checked without a Rucio configuration).

Two things shape them besides the rules themselves:

* ``jsonschema``'s ``pattern`` is ``re.search``: every regex here is anchored with ``^`` and
  ``\\Z`` (``$`` would accept a trailing newline) and carries ``(?a)`` where it uses ``\\d``.
* Rucio copies the first 125 characters of an error into an HTTP header; gunicorn answers
  HTTP 500 if that header holds a character beyond Latin-1, and ``jsonschema`` quotes the
  offending value first (``'run<Arabic-Indic digits>.raw' does not match ...``). So a value that is not printable
  ASCII is refused by one ``if``/``else`` rule whose message (``'<explanation>' was expected``)
  does not quote it, and the other rules only look at printable-ASCII values.
"""

from __future__ import annotations

from typing import Any

from rucio_inlet.naming import PRINTABLE_ASCII_REGEX, SAFE_NAME_REGEX, NamingSettings

#: Long enough that Rucio's 125-character header never reaches the quoted value after it.
NON_ASCII_NAME = (
    "a DID name made of ASCII letters, digits, '.', '-', '_' and '/' only (this one has a control or non-ASCII "
    "character, e.g. a newline or a non-ASCII digit)"
)
NON_ASCII_SCOPE = (
    "a scope made of ASCII letters, digits, '.', '-' and '_' only (this one has a control or non-ASCII "
    "character, e.g. a newline or a non-ASCII digit)"
)

#: Why each part of a safe name is required; each is its own check so the refusal names the reason.
_NAME_CHECKS: list[dict[str, Any]] = [
    {"not": {"description": "a DID name must not start with '/': names are relative paths", "pattern": "^/"}},
    {
        "not": {
            "description": "a DID name must not have a '.' or '..' path segment (it would leave or alias a directory)",
            "pattern": r"(?:^|/)\.\.?(?:/|\Z)",
        }
    },
    {
        "not": {
            "description": "a DID name must not have an empty path segment ('//' or a trailing '/')",
            "pattern": r"//|/\Z",
        }
    },
    {
        "description": "a DID name uses ASCII letters, digits, '.', '-', '_' and '/', starts with a letter or digit, "
        "and has no '.', '..' or empty path segment",
        "pattern": SAFE_NAME_REGEX,
    },
]


def _printable_or(then: dict[str, Any], otherwise: str | None) -> dict[str, Any]:
    """``then`` for printable-ASCII strings; else the explanation (or nothing: another rule refuses it)."""
    out: dict[str, Any] = {"if": {"type": "string", "pattern": PRINTABLE_ASCII_REGEX}, "then": then}
    if otherwise is not None:
        out["else"] = {"const": otherwise}
    return out


def name_schema(max_length: Any) -> dict[str, Any]:
    """Rucio's ``NAME``, safe in every scope: every schema that names a DID to create refers to it."""
    return {
        "description": "Data Identifier name: a relative path of ASCII letters, digits, '.', '-', '_' (see above)",
        "type": "string",
        **_printable_or({"maxLength": max_length, "allOf": _NAME_CHECKS}, NON_ASCII_NAME),
    }


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
                    "name": _printable_or(
                        {
                            "type": "string",
                            "pattern": naming.name_regex(scope),
                            "description": expected(naming, scope),
                        },
                        None,  # NAME refuses it, without quoting it
                    )
                }
            },
        }
        for scope in naming.scopes()
    ]


def scope_schema(naming: NamingSettings, max_length: Any) -> dict[str, Any]:
    tiers = ", ".join(naming.scopes()) or "none"
    description = (
        f"Scope name: an experiment scope ({tiers}), user.<account>, group.<name>, "
        f"or a generic scope matching {naming.generic_scope_pattern}"
    )
    return {
        "description": description,
        "type": "string",
        **_printable_or(
            {"description": description, "maxLength": max_length, "pattern": naming.scope_regex()}, NON_ASCII_SCOPE
        ),
    }


def with_rules(base: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {**base, "allOf": [*base.get("allOf", []), *rules]} if rules else dict(base)
