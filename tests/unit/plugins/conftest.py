"""Rucio reads its configuration once, at first import: the plugin tests import it lazily.

Module-level imports of Rucio would run at collection time, before any integration test of the
same session has pointed RUCIO_CONFIG at the lake; Rucio would then keep this throw-away
configuration (and its database engine) for the whole process. So the modules under test are
handed out by fixtures, and a throw-away configuration is used only when none is set.
The database URL names a SQLite file nobody opens: these tests never reach Rucio's catalogue.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session", autouse=True)
def _rucio_config() -> None:
    if "RUCIO_CONFIG" in os.environ:
        return
    cfg_dir = Path(tempfile.mkdtemp(prefix="inlet-unit-rucio-"))
    (cfg_dir / "rucio.cfg").write_text(
        "[common]\nloglevel = WARNING\n"
        f"[database]\ndefault = sqlite:///{cfg_dir / 'unused.db'}\n"
        "[policy]\npermission = generic\nschema = generic\n"
        "[conveyor]\ntransfertool = gfal2\ngfal2_link_concurrency = 2\n"
    )
    os.environ["RUCIO_CONFIG"] = str(cfg_dir / "rucio.cfg")


@pytest.fixture
def tt(_rucio_config: None) -> ModuleType:
    return importlib.import_module("inlet.plugins.transfertool")


@pytest.fixture
def s3(_rucio_config: None) -> ModuleType:
    return importlib.import_module("inlet.plugins.s3")
