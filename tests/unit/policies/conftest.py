"""Rucio-side policy modules, imported lazily under a throw-away Rucio configuration.

Rucio reads its configuration at first import; importing it at collection time would pin this
configuration for integration tests of the same session (see tests/unit/plugins/conftest.py).
The database URL names a SQLite file nobody opens: these tests never reach a catalogue.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from types import ModuleType

import pytest


def _rucio_config() -> None:
    if "RUCIO_CONFIG" in os.environ:
        return
    cfg_dir = Path(tempfile.mkdtemp(prefix="inlet-unit-rucio-"))
    (cfg_dir / "rucio.cfg").write_text(
        "[common]\nloglevel = WARNING\n"
        f"[database]\ndefault = sqlite:///{cfg_dir / 'unused.db'}\n"
        "[policy]\npermission = generic\nschema = generic\n"
    )
    os.environ["RUCIO_CONFIG"] = str(cfg_dir / "rucio.cfg")


@pytest.fixture
def permission() -> ModuleType:
    _rucio_config()
    return importlib.import_module("inlet.policies.permission")


@pytest.fixture
def closure() -> ModuleType:
    _rucio_config()
    return importlib.import_module("inlet.policies.closure")
