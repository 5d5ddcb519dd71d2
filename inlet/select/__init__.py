"""Selecting data by meaning: ``inlet select "raw:(run_number=5000) and (stream='ksl')"``.

Grammar (keywords and tiers are case-insensitive; whitespace is free)::

    selection  := [ tier ":" ] [ expr ]
    tier       := "*" | NAME ( "." NAME )*
    expr       := term ( "or" term )*
    term       := factor ( "and" factor )*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := KEY op value
                | KEY "in" "(" value ( "," value )* ")"
                | KEY "between" value "and" value
    op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := NUMBER | 'text' | "text" | NAME | true | false

The tier is a Rucio scope (``cygno.raw``) or the last part of one (``raw`` selects the files
of every scope that ends in ``.raw``, and of a scope named ``raw``); ``*`` or no tier means
every scope. Keys are those of :mod:`rucio_inlet.catalog_query`: run columns (``experiment``,
``run_number``/``run_nr``/``run``, ``run_type``, ``run_state``, ``run_start``, ``run_stop``,
``run_embargo_until``), file columns (``name``, ``size``, ``adler32``, ``closed_at``...),
``rse`` (the file is available there) and, for any other key, the run's conditions
(``stream``, ``beam``...). A quoted value with ``*`` is a wildcard. Dates are ISO 8601
strings: ``run_start >= '2026-11-01'``.

Examples::

    raw:(run_number=5000) and (stream='ksl')
    cygno.raw: run between 5000 and 5100 and run_type in (physics, cosmics)
    *: rse = TAPE and not rse = SITE_A_DISK
"""

from inlet.select.grammar import Selection, SelectSyntaxError, parse_selection

__all__ = ["SelectSyntaxError", "Selection", "parse_selection"]
