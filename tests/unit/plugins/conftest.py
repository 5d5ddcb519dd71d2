"""Rucio reads its configuration once, at first import: the plugin tests import it lazily.

Module-level imports of Rucio would run at collection time, before any integration test of the
same session has pointed RUCIO_CONFIG at the lake; Rucio would then keep this throw-away
configuration (and its database engine) for the whole process. So the modules under test are
handed out by fixtures, and a throw-away configuration is used only when none is set.
The database URL names a SQLite file nobody opens: these tests never reach Rucio's catalogue.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

from tests.unit.throwaway_rucio import use_throwaway_rucio_config


@pytest.fixture(scope="session", autouse=True)
def _rucio_config() -> None:
    use_throwaway_rucio_config()


@pytest.fixture
def tt(_rucio_config: None) -> ModuleType:
    return importlib.import_module("inlet.plugins.transfertool")


@pytest.fixture
def s3(_rucio_config: None) -> ModuleType:
    return importlib.import_module("inlet.plugins.s3")


def s3_protocol(s3: ModuleType, scheme: str = "http") -> Any:
    """The S3 protocol of an RSE "S3" on 127.0.0.1:29000, bucket "bucket" (never contacted here)."""
    attrs = {
        "scheme": scheme,
        "hostname": "127.0.0.1",
        "port": 29000,
        "prefix": "/bucket/",
        "impl": "inlet.plugins.s3.Default",
        "domains": {},
        "extended_attributes": None,
        "auth_token": None,
    }
    rse = {"rse": "S3", "id": "x", "deterministic": False, "protocols": [], "lfn2pfn_algorithm": "hash"}
    return s3.S3Protocol(attrs, rse)
