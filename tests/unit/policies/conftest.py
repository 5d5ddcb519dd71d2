"""Rucio-side policy modules, imported lazily under a throw-away Rucio configuration.

Rucio reads its configuration at first import; importing it at collection time would pin this
configuration for integration tests of the same session (see tests/unit/plugins/conftest.py).
The database URL names a SQLite file nobody opens: these tests never reach a catalogue.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from tests.unit.throwaway_rucio import use_throwaway_rucio_config


def _rucio_config() -> None:
    use_throwaway_rucio_config()


@pytest.fixture
def permission() -> ModuleType:
    _rucio_config()
    return importlib.import_module("inlet.policies.permission")


@pytest.fixture
def closure() -> ModuleType:
    _rucio_config()
    return importlib.import_module("inlet.policies.closure")
