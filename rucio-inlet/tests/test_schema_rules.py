"""The schema fragments the server validates DIDs with: name tables accepted and refused.

(The same schema is exercised through the real Rucio server in tests/integration.)
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from rucio_inlet.naming import NamingSettings
from rucio_inlet.schema_rules import name_rules, scope_schema, with_rules

DID = {"type": "object", "properties": {"scope": {"type": "string"}, "name": {"type": "string"}}}


def _did_schema() -> dict[str, Any]:
    return with_rules(DID, name_rules(NamingSettings()))


ACCEPTED = [
    ("cygno.raw", "run012345.mid.gz"),
    ("cygno.raw", "run012345_pmt_0001.mid.gz"),
    ("cygno.raw", "run012345.raw"),
    ("cygno.raw", "run012345_pmt.raw"),
    ("cygno.raw", "runs000001-000999.raw"),
    ("cygno.reco", "run012345_reco_v2.root"),
    ("cygno.reco", "run012345.reco"),
    ("kloe.raw", "run005000_ksl_0001.ybos"),
    ("kloe.raw", "run005000_ksl.raw"),
    ("test", "smoke-0123456789ab.dat"),  # generic scopes keep Rucio's generic names
    ("user.jdoe", "anything_goes.txt"),
]
REFUSED = [
    ("cygno.raw", "bad.dat"),
    ("cygno.raw", "run12345.mid.gz"),  # five digits
    ("cygno.raw", "run012345.mid"),
    ("cygno.raw", "run012345.reco"),  # a reco dataset in the raw scope
    ("cygno.raw", "Run012345.mid.gz"),
    ("cygno.raw", "run012345.mid.gz.tmp"),
    ("cygno.reco", "run012345.mid.gz"),  # a raw file in the reco scope
    ("kloe.raw", "run005000.ybos"),  # KLOE files name their stream
]


@pytest.mark.parametrize(("scope", "name"), ACCEPTED)
def test_accepted(scope: str, name: str) -> None:
    jsonschema.validate({"scope": scope, "name": name}, _did_schema())


@pytest.mark.parametrize(("scope", "name"), REFUSED)
def test_refused_with_expected_pattern(scope: str, name: str) -> None:
    with pytest.raises(jsonschema.ValidationError) as err:
        jsonschema.validate({"scope": scope, "name": name}, _did_schema())
    text = str(err.value)
    assert f"{name!r} does not match" in text
    assert NamingSettings().name_regex(scope) in text.replace("\\\\", "\\")
    assert f"names in scope {scope} must match one of" in text


@pytest.mark.parametrize("scope", ["cygno.raw", "kloe.reco", "user.jdoe", "test", "rehearsal", "user.data-1"])
def test_scopes_accepted(scope: str) -> None:
    jsonschema.validate(scope, scope_schema(NamingSettings(), 25))


@pytest.mark.parametrize("scope", ["cygno.bogus", "virgo.reco", "ligo.raw", "a.b.c", "user.", "has space"])
def test_scopes_refused(scope: str) -> None:
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(scope, scope_schema(NamingSettings(), 25))
