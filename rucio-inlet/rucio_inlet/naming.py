"""The experiments' naming rules: which scopes exist and which DID names each accepts.

This module is shared by two worlds that must agree on one definition:

* inlet's own configuration (``[naming]`` in inlet's TOML, via ``inlet.config``, which holds these classes);
* the Rucio server and daemons, which load ``rucio_inlet`` without inlet.
  They read the same rules from the file named by ``INLET_NAMING_FILE`` or by
  ``[policy] inlet_naming_file`` in rucio.cfg (the lake writes both), else use the defaults here.

So it imports only the standard library (and, lazily, jsonschema and rucio's config reader, both
installed with Rucio), and runs on the Python 3.9 of Rucio's official images.

Patterns are Python regular expressions matched against the WHOLE name (``fullmatch``; in the
server's JSON schema they are anchored with ``\\Z``, because ``$`` also matches before a final
newline) with ASCII semantics (``\\d`` is 0-9 only, not Arabic-Indic or other Unicode digits).
Whatever the patterns say, every name in every scope must also be a safe relative path
(:func:`name_problem`): no leading ``/``, no empty, ``.`` or ``..`` segment, no control or
non-ASCII character. Run file patterns must
name the run with a ``(?P<run>...)`` group: the run-partitioned lfn2pfn reads the run from it.
``{tier}`` in a dataset or container pattern stands for the tier of the scope (``raw``...).

The storage path of a run file depends on the run its pattern extracts, so patterns may be added
freely, but a pattern must never be changed so that it reads a different run from a name that is
already stored (that file's path would move). Rucio builds its schema from these rules once, at
import: restart the server and daemons after changing them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Environment variable naming the naming-rules file (JSON or TOML) inside Rucio processes.
NAMING_FILE_ENV = "INLET_NAMING_FILE"
#: rucio.cfg option (section ``[policy]``) naming the same file.
NAMING_FILE_OPTION = "inlet_naming_file"

_NAMED_GROUP = re.compile(r"(?<!\\)\(\?P<(\w+)>")
_NAME_TOKEN = re.compile(r"[a-z][a-z0-9_-]*", re.ASCII)

#: Rucio's generic limit on DID names (rucio.common.schema.generic.NAME_LENGTH).
NAME_LENGTH = 250
#: Characters a DID name may use in any scope: Rucio's generic set (letters, digits, ``.-_/``), ASCII only.
NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-/")
#: Scope prefixes reserved for Rucio's conventions: ``user.<account>`` and ``group.<name>``.
RESERVED_SCOPE_PREFIXES = ("user", "group")

#: The same rules as :func:`name_problem`, as one regex for the server's JSON schema (checked
#: against that function by property-based tests): a first segment that starts with a letter or
#: digit, then ``/``-separated segments that are neither empty nor ``.`` nor ``..``; ``\Z``, not
#: ``$``, so that a trailing newline cannot slip through.
SAFE_NAME_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]+)*\Z"
#: Printable ASCII only: names outside it are refused by one rule whose message does not echo the
#: name (Rucio copies the message into an HTTP header, where a non-Latin-1 character is an HTTP 500).
PRINTABLE_ASCII_REGEX = r"^[\x20-\x7e]*\Z"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe DID name in any scope, or None if it is.

    A DID name becomes part of a storage path (``<prefix>/<scope>/.../<name>``), so it must stay
    a plain relative path: no leading ``/``, no empty, ``.`` or ``..`` segment (they would let
    the path leave the RSE or alias another DID's file), no control character (newline, NUL,
    DEL...) and only Rucio's generic characters, ASCII. This is the reference the schema regex
    is tested against, written as plain code on purpose.
    """
    if not name:
        return "the name is empty"
    if len(name) > NAME_LENGTH:
        return f"the name has {len(name)} characters; at most {NAME_LENGTH} are allowed"
    for ch in name:
        if ch not in NAME_CHARS:
            kind = "a control character" if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F else "the character"
            return f"the name contains {kind} U+{ord(ch):04X}; use only ASCII letters, digits, '.', '-', '_' and '/'"
    if name.startswith("/"):
        return "the name starts with '/'; DID names are relative (drop the leading '/')"
    for segment in name.split("/"):
        if segment == "":
            return "the name has an empty path segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"the name has a {segment!r} path segment, which would leave or alias a storage directory"
    if not name[0].isalnum():
        return "the name must start with an ASCII letter or digit"
    return None


class NamingError(ValueError):
    """A naming rule that cannot work, with the fix in the message."""


def _check_pattern(pattern: str, where: str) -> str:
    try:
        re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise NamingError(f"{where}: {pattern!r} is not a valid regular expression ({exc}); fix the pattern") from exc
    return pattern


def strip_group_names(pattern: str) -> str:
    """The same regex without group names, so several patterns can be OR-ed into one."""
    return _NAMED_GROUP.sub("(", pattern)


def _doc(text: str) -> dict[str, str]:
    # Field descriptions for inlet's configuration reference (README), kept next to the field.
    return {"description": text}


# Plain dataclasses, not pydantic: this module runs in Rucio's Python 3.9 processes, which have
# no pydantic. The structure of a rules file is checked with jsonschema (a Rucio dependency,
# NAMING_JSON_SCHEMA), the meaning of the rules in __post_init__. inlet's settings hold these
# same classes (pydantic validates stdlib dataclasses and runs __post_init__).
@dataclass
class TierNaming:
    """One data tier of an experiment (scope ``<experiment>.<tier>``)."""

    __pydantic_config__ = {"extra": "forbid"}  # a misspelt key in inlet's TOML is an error

    files: list[str] = field(
        metadata=_doc("Regexes of file names in this tier; each must capture the run as (?P<run>...).")
    )
    examples: list[str] = field(
        default_factory=list,
        metadata=_doc("Valid names in this tier, shown in the server's error for a refused name (checked at load)."),
    )
    protected: bool = field(
        default=False,
        metadata=_doc(
            "Raw-like data: only data managers (account attribute data-manager) and root may delete "
            "its rules or replicas or reduce its copies."
        ),
    )

    def __post_init__(self) -> None:
        if not self.files:
            raise NamingError("a tier needs at least one file pattern (files = [...])")
        for p in self.files:
            _check_pattern(p, "file pattern")
            if "run" not in _compiled(p).groupindex:
                raise NamingError(
                    f"file pattern {p!r} has no (?P<run>...) group; the run-partitioned storage path needs the "
                    "run number: add one, e.g. run(?P<run>\\d{6})\\.mid\\.gz"
                )


@dataclass
class ExperimentNaming:
    """An experiment's scopes and DID names."""

    __pydantic_config__ = {"extra": "forbid"}

    tiers: dict[str, TierNaming] = field(metadata=_doc("Data tiers; each gives scope <experiment>.<tier>."))
    datasets: list[str] = field(
        default_factory=list, metadata=_doc("Regexes of run dataset names; {tier} stands for the scope's tier.")
    )
    containers: list[str] = field(
        default_factory=list, metadata=_doc("Regexes of container names; {tier} stands for the scope's tier.")
    )

    def __post_init__(self) -> None:
        if not self.tiers:
            raise NamingError("an experiment needs at least one tier, e.g. tiers.raw")
        for tier in self.tiers:
            if not _NAME_TOKEN.fullmatch(tier):
                raise NamingError(f"tier {tier!r}: use lower-case letters, digits, '-' or '_' (it becomes a scope)")
        for p in (*self.datasets, *self.containers):
            _check_pattern(p.replace("{tier}", "raw"), "collection pattern")
        for tier, rules in self.tiers.items():
            patterns = [*rules.files, *(p.replace("{tier}", tier) for p in (*self.datasets, *self.containers))]
            for example in rules.examples:
                if not any(_compiled(p).fullmatch(example) for p in patterns):
                    raise NamingError(
                        f"example {example!r} of tier {tier!r} matches none of its patterns {patterns}; "
                        "fix the example or the patterns"
                    )


def _default_experiments() -> dict[str, ExperimentNaming]:
    run = r"run(?P<run>\d{6})"
    stream = r"(?P<stream>[a-z][a-z0-9]*)"
    return {
        # CYGNO's DAQ writes one MIDAS file per run: run012345.mid.gz.
        "cygno": ExperimentNaming(
            tiers={
                "raw": TierNaming(
                    files=[rf"{run}\.mid\.gz", rf"{run}_{stream}_(?P<seq>\d{{4}})\.mid\.gz"],
                    examples=["run012345.mid.gz", "run012345_pmt_0001.mid.gz", "run012345.raw"],
                    protected=True,
                ),
                "reco": TierNaming(
                    files=[rf"{run}_reco(_v(?P<version>\d+))?\.root"],
                    examples=["run012345_reco_v2.root", "run012345.reco"],
                ),
            },
            datasets=[rf"{run}\.{{tier}}", rf"{run}_{stream}\.{{tier}}"],
            containers=[r"runs(?P<first>\d{6})-(?P<last>\d{6})\.{tier}"],
        ),
        # KLOE splits a run into streams (ksl, kpm, ...), each in YBOS files.
        "kloe": ExperimentNaming(
            tiers={
                "raw": TierNaming(
                    files=[rf"{run}_{stream}_(?P<seq>\d{{4}})\.ybos"],
                    examples=["run005000_ksl_0001.ybos", "run005000_ksl.raw"],
                    protected=True,
                ),
                "reco": TierNaming(
                    files=[rf"{run}_{stream}_(?P<seq>\d{{4}})\.dst"], examples=["run005000_ksl_0001.dst"]
                ),
            },
            datasets=[rf"{run}\.{{tier}}", rf"{run}_{stream}\.{{tier}}"],
        ),
        # EGO/Virgo writes 1-second frame files named by their GPS start second; the run
        # (a data-taking period) is in front, so every chunk still names its run dataset.
        "virgo": ExperimentNaming(
            tiers={
                "raw": TierNaming(
                    files=[rf"{run}_{stream}_(?P<gps>\d{{10}})\.gwf"],
                    examples=["run000042_hrec_1387324818.gwf", "run000042.raw"],
                    protected=True,
                ),
            },
            datasets=[rf"{run}\.{{tier}}"],
        ),
    }


@dataclass
class NamingSettings:
    """Scopes and DID names of the experiments this lake serves (enforced by the Rucio server)."""

    __pydantic_config__ = {"extra": "forbid"}

    experiment: str = field(default="cygno", metadata=_doc("The experiment this deployment serves by default."))
    experiments: dict[str, ExperimentNaming] = field(
        default_factory=_default_experiments,
        metadata=_doc(
            "Per experiment: tiers (scope <exp>.<tier>) with file name regexes, dataset and container "
            "name regexes. Names in these scopes must match; other scopes keep Rucio's generic rules."
        ),
    )
    generic_scope_pattern: str = field(
        default=r"[A-Za-z0-9_-]+",
        metadata=_doc(
            "Scopes outside the experiments (test, tooling) must match this regex (whole, ASCII); with no "
            "dot by default, so that a dotted scope is always <exp>.<tier>, user.<account> or group.<name>."
        ),
    )

    def __post_init__(self) -> None:
        for exp in self.experiments:
            if not _NAME_TOKEN.fullmatch(exp) or exp in RESERVED_SCOPE_PREFIXES:
                raise NamingError(
                    f"experiment {exp!r}: use lower-case letters, digits, '-' or '_', and not 'user' or 'group' "
                    "(user.<account> and group.<name> scopes are reserved)"
                )
        _check_pattern(self.generic_scope_pattern, "generic_scope_pattern")
        if self.experiments and self.experiment not in self.experiments:
            raise NamingError(
                f"[naming] experiment {self.experiment!r} is not among [naming.experiments] "
                f"({', '.join(sorted(self.experiments))}); add it or pick one of those"
            )

    def to_dict(self) -> dict[str, Any]:
        """The rules as JSON-ready data: what the lake writes and :func:`parse_naming` reads."""
        return asdict(self)

    # -- derived views -----------------------------------------------------------------
    def tier_of(self, scope: str) -> tuple[str, str, TierNaming] | None:
        """(experiment, tier, rules) of an experiment scope, or None for any other scope."""
        exp, dot, tier = scope.partition(".")
        if not dot or exp not in self.experiments:
            return None
        rules = self.experiments[exp].tiers.get(tier)
        return None if rules is None else (exp, tier, rules)

    def scopes(self) -> list[str]:
        return [f"{exp}.{tier}" for exp, e in self.experiments.items() for tier in e.tiers]

    def protected_scopes(self) -> list[str]:
        return [f"{exp}.{tier}" for exp, e in self.experiments.items() for tier, t in e.tiers.items() if t.protected]

    def name_patterns(self, scope: str) -> list[str]:
        """All name regexes (files, datasets, containers) accepted in an experiment scope."""
        found = self.tier_of(scope)
        if found is None:
            return []
        exp, tier, rules = found
        e = self.experiments[exp]
        return [*rules.files, *(p.replace("{tier}", tier) for p in (*e.datasets, *e.containers))]

    def examples(self, scope: str) -> list[str]:
        found = self.tier_of(scope)
        return [] if found is None else list(found[2].examples)

    def name_regex(self, scope: str) -> str:
        """One regex for the schema, matched whole: the alternatives of ``name_patterns``.

        ``(?a)`` gives ASCII ``\\d``/``\\w`` (JSON schema has no flags), ``\\Z`` refuses a trailing newline.
        """
        alts = "|".join(strip_group_names(p) for p in self.name_patterns(scope))
        return f"(?a)^(?:{alts})\\Z"

    def scope_regex(self) -> str:
        """The scope schema's regex, matched whole and ASCII (see :meth:`name_regex`)."""
        exps = "|".join(
            f"{re.escape(exp)}\\.(?:{'|'.join(re.escape(t) for t in e.tiers)})" for exp, e in self.experiments.items()
        )
        # Rucio's conventions: user.<account> and group.<name> (account names are lower case in Rucio,
        # but sites commonly create user.JDoe-style scopes by hand).
        alts = [
            *(rf"{prefix}\.[A-Za-z0-9_-]+" for prefix in RESERVED_SCOPE_PREFIXES),
            *([exps] if exps else []),
            f"(?:{self.generic_scope_pattern})",
        ]
        return "(?a)^(?:" + "|".join(alts) + ")\\Z"

    def did_problem(self, scope: str, name: str) -> str | None:
        """Why ``scope:name`` may not be created, or None: the safe-name rules, then the scope's patterns.

        The same decision as the server's schema, for routes Rucio does not validate with it
        (bulk ``add_dids`` and the content it registers): a permission check can refuse with this.
        """
        problem = name_problem(name)
        if problem is not None:
            return f"{scope}:{name!a}: {problem}"
        patterns = self.name_patterns(scope)
        if patterns and not any(_compiled(p).fullmatch(name) for p in patterns):
            return f"{scope}:{name}: names in scope {scope} must match one of: {', '.join(patterns)}"
        return None

    def run_of(self, scope: str, name: str) -> int | None:
        """The run number of a file name in an experiment scope, or None if it is not a run file."""
        found = self.tier_of(scope)
        if found is None:
            return None
        for pattern in found[2].files:
            m = _compiled(pattern).fullmatch(name)
            if m is not None:
                return int(m.group("run"))
        return None


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # ASCII: a run number is 0-9 digits; int() would happily read Arabic-Indic ones.
    return re.compile(pattern, re.ASCII)


_PATTERNS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
#: The structure of a rules file (JSON): unknown keys are refused, so a typo is not a silently ignored rule.
NAMING_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "experiment": {"type": "string"},
        "generic_scope_pattern": {"type": "string"},
        "experiments": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["tiers"],
                "properties": {
                    "datasets": _PATTERNS,
                    "containers": _PATTERNS,
                    "tiers": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["files"],
                            "properties": {
                                "files": _PATTERNS,
                                "examples": _PATTERNS,
                                "protected": {"type": "boolean"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def parse_naming(data: Any, source: str) -> NamingSettings:
    """Rules from parsed JSON (or inlet's TOML table): structure by jsonschema, meaning by the classes."""
    import jsonschema

    errors = sorted(jsonschema.Draft7Validator(NAMING_JSON_SCHEMA).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        shown = "; ".join(f"{'.'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors)
        raise NamingError(f"naming rules in {source} are invalid: {shown}")
    experiments = {
        exp: ExperimentNaming(
            tiers={tier: TierNaming(**rules) for tier, rules in e["tiers"].items()},
            datasets=list(e.get("datasets", [])),
            containers=list(e.get("containers", [])),
        )
        for exp, e in data.get("experiments", {}).items()
    }
    kwargs: dict[str, Any] = {k: data[k] for k in ("experiment", "generic_scope_pattern") if k in data}
    if "experiments" in data:
        kwargs["experiments"] = experiments
    try:
        return NamingSettings(**kwargs)
    except NamingError as exc:
        raise NamingError(f"naming rules in {source} are invalid: {exc}") from exc


def read_naming_file(path: Path) -> NamingSettings:
    """Read rules from JSON (as the lake writes them) or TOML (a [naming] table, or top level).

    TOML comes from the standard library on 3.11+ and from ``tomli`` on 3.9/3.10, which Rucio
    installs there already (through Alembic).
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise NamingError(f"cannot read the naming rules file {path} ({exc}); fix {NAMING_FILE_ENV}") from exc
    try:
        data = _toml().loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # json's and TOML's decode errors are both ValueErrors
        raise NamingError(f"the naming rules file {path} is not valid {path.suffix[1:] or 'JSON'} ({exc})") from exc
    if path.suffix == ".toml" and "naming" in data:
        data = data["naming"]
    return parse_naming(data, str(path))


def _toml() -> Any:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef,unused-ignore]
    return tomllib


def naming_file() -> Path | None:
    """Where the running process should read its rules from, if anywhere."""
    env = os.environ.get(NAMING_FILE_ENV)
    if env:
        return Path(env)
    try:
        from rucio.common import config as rucio_config

        value = rucio_config.config_get(
            "policy", NAMING_FILE_OPTION, raise_exception=False, default=None, check_config_table=False
        )
    except Exception:  # no rucio.cfg at all (unit tests, tools): defaults apply
        return None
    return Path(value) if value else None


@functools.cache
def active_naming() -> NamingSettings:
    """The rules of this process, read once: Rucio builds its schema from them at import."""
    path = naming_file()
    return NamingSettings() if path is None else read_naming_file(path)
