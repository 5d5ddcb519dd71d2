"""The naming rules: defaults, a TOML file for another experiment, and bad rules refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rucio_inlet.naming import (
    NAMING_FILE_ENV,
    NamingError,
    NamingSettings,
    active_naming,
    parse_naming,
    read_naming_file,
)


def test_default_scopes_cover_experiments_and_tiers() -> None:
    n = NamingSettings()
    assert n.scopes() == ["cygno.raw", "cygno.reco", "kloe.raw", "kloe.reco", "virgo.raw"]
    assert n.protected_scopes() == ["cygno.raw", "kloe.raw", "virgo.raw"]


@pytest.mark.parametrize(
    ("scope", "name", "run"),
    [
        ("cygno.raw", "run012345.mid.gz", 12345),
        ("cygno.raw", "run012345_pmt_0001.mid.gz", 12345),
        ("kloe.raw", "run005000_ksl_0001.ybos", 5000),
        ("cygno.raw", "run012345.raw", None),  # a dataset: not a run file
        ("test", "run012345.mid.gz", None),  # not an experiment scope
        ("cygno.bogus", "run012345.mid.gz", None),
    ],
)
def test_run_of(scope: str, name: str, run: int | None) -> None:
    assert NamingSettings().run_of(scope, name) == run


VIRGO_TOML = """
[naming]
experiment = "virgo"
[naming.experiments.virgo]
datasets = ['O(?P<run>\\d)\\.{tier}']
[naming.experiments.virgo.tiers.strain]
files = ['V-(?P<stream>[A-Za-z0-9_]+)-(?P<run>\\d{10})-1\\.gwf']
examples = ["V-V1Online-1234567890-1.gwf", "O3.strain"]
protected = true
"""


def test_another_experiment_from_toml(tmp_path: Path) -> None:
    # The [naming] table of inlet's TOML file is also what the Rucio server reads (tomli on 3.9).
    toml = tmp_path / "inlet.toml"
    toml.write_text(VIRGO_TOML)
    n = read_naming_file(toml)
    assert n.scopes() == ["virgo.strain"]
    assert n.run_of("virgo.strain", "V-V1Online-1234567890-1.gwf") == 1234567890
    assert n.protected_scopes() == ["virgo.strain"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"experiments": {"x": {"tiers": {"raw": {"files": ["run\\d+"]}}}}, "experiment": "x"}, "(?P<run>...)"),
        ({"experiments": {"x": {"tiers": {"raw": {"files": ["run(?P<run>[0-9"]}}}}, "experiment": "x"}, "not a valid"),
        ({"experiments": {"user": {"tiers": {"raw": {"files": ["(?P<run>\\d+)"]}}}}, "experiment": "user"}, "reserved"),
        ({"experiments": {"x": {"tiers": {}}}, "experiment": "x"}, "at least one tier"),
        ({"experiments": {"x": {"tiers": {"Raw!": {"files": ["(?P<run>\\d+)"]}}}}, "experiment": "x"}, "tier 'Raw!'"),
        ({"experiment": "nope"}, "is not among"),
        (
            {"experiments": {"x": {"tiers": {"raw": {"files": ["r(?P<run>\\d+)"], "examples": ["bad"]}}}}},
            "matches none",
        ),
        ({"experiments": {"x": {"tiers": {"raw": {"files": ["r(?P<run>\\d+)"], "typo": 1}}}}}, "typo"),
    ],
)
def test_bad_rules_are_refused_with_the_fix(rules: dict[str, object], message: str) -> None:
    with pytest.raises(NamingError) as err:
        parse_naming(rules, "test")
    assert message in str(err.value)


def test_rucio_process_reads_the_file_named_by_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "naming.json"
    custom = parse_naming(
        {"experiment": "k", "experiments": {"k": {"tiers": {"raw": {"files": ["k(?P<run>\\d+)\\.dat"]}}}}}, "test"
    )
    path.write_text(json.dumps(custom.to_dict()))
    monkeypatch.setenv(NAMING_FILE_ENV, str(path))
    active_naming.cache_clear()
    try:
        assert active_naming().scopes() == ["k.raw"]
    finally:
        active_naming.cache_clear()


def test_unreadable_file_names_the_variable(tmp_path: Path) -> None:
    bad = tmp_path / "naming.json"
    bad.write_text("{not json")
    with pytest.raises(NamingError, match="not valid"):
        read_naming_file(bad)
    with pytest.raises(NamingError, match=NAMING_FILE_ENV):
        read_naming_file(tmp_path / "missing.json")


def test_lake_writes_what_the_server_reads(tmp_path: Path) -> None:
    # The lake serialises [naming] to JSON; reading it back gives the same rules.
    n = NamingSettings()
    path = tmp_path / "naming.json"
    path.write_text(json.dumps(n.to_dict()))
    assert read_naming_file(path) == n
    assert json.loads(path.read_text())["experiment"] == "cygno"
