"""DIDs from file names: the naming schema's rules and messages, run and stream checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from rucio_inlet.schema_rules import expected

from inlet.config import Settings
from inlet.uploader.plan import BadInput, plan_file, run_collections


def test_run_collections_follow_the_naming_schema() -> None:
    c = run_collections(Settings(), 12345, "raw")
    assert (c.scope, c.dataset, c.container) == ("cygno.raw", "run012345.raw", "runs012000-012999.raw")


def test_kloe_has_no_containers() -> None:
    c = run_collections(Settings(), 5000, "raw", "kloe")
    assert (c.scope, c.dataset, c.container) == ("kloe.raw", "run005000.raw", None)


def test_file_names_plain_and_stream_variant() -> None:
    s = Settings()
    c = run_collections(s, 12345, "raw")
    assert plan_file(Path("/daq/run012345.mid.gz"), c, s.naming).did == "cygno.raw:run012345.mid.gz"
    assert plan_file(Path("/daq/run012345_pmt_0001.mid.gz"), c, s.naming).name == "run012345_pmt_0001.mid.gz"


def test_a_name_breaking_the_schema_is_refused_with_the_schema_message() -> None:
    s = Settings()
    c = run_collections(s, 12345, "raw")
    with pytest.raises(BadInput) as err:
        plan_file(Path("/daq/run12345.dat"), c, s.naming)
    assert expected(s.naming, "cygno.raw") in str(err.value)


def test_run_in_the_name_must_agree() -> None:
    s = Settings()
    c = run_collections(s, 12345, "raw")
    with pytest.raises(BadInput, match="pass --run 12346"):
        plan_file(Path("/daq/run012346.mid.gz"), c, s.naming)


def test_unknown_stream_and_bad_run_number() -> None:
    with pytest.raises(BadInput, match=r"unknown stream 'calib' \(configured streams: raw\)"):
        run_collections(Settings(), 1, "calib")
    with pytest.raises(BadInput, match="outside 0-999999"):
        run_collections(Settings(), 1_000_000, "raw")
