"""Modules Rucio loads, imported lazily under a throw-away Rucio configuration.

Rucio reads its configuration once, at first import: importing it at collection time would pin
whatever configuration happens to be set. So the modules under test are handed out by fixtures,
and a throw-away configuration (throwaway_rucio.py) is used only when none is set.
The database URL names a SQLite file nobody opens: these tests never reach a catalogue.
These tests run on Python 3.9 (Rucio's official images) and 3.11 alike.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest
from throwaway_rucio import use_throwaway_rucio_config

try:
    import gfal2  # noqa: F401 - the real binding where the OS has one for this Python (3.11 on Debian)
except ImportError:  # Python 3.9: no binding exists here; see gfal2_stub.py for what that leaves untested
    import gfal2_stub

    sys.modules["gfal2"] = gfal2_stub


@pytest.fixture(scope="session", autouse=True)
def _rucio_config() -> None:
    use_throwaway_rucio_config()


@pytest.fixture
def permission() -> ModuleType:
    return importlib.import_module("rucio_inlet.permission")


@pytest.fixture
def closure() -> ModuleType:
    return importlib.import_module("rucio_inlet.closure")


@pytest.fixture
def tt() -> ModuleType:
    return importlib.import_module("rucio_inlet.transfertool")


@pytest.fixture
def s3() -> ModuleType:
    return importlib.import_module("rucio_inlet.s3")
