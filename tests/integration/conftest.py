"""The real local lake, started once per test session.

If a healthy lake is already up (a developer's, or one left by ``INLET_KEEP_LAKE=1``), the
session reuses it and leaves it running. Otherwise the fixture starts one and stops it at the
end. Everything comes from inlet's normal configuration, so ``INLET_*`` variables move a
test session to other ports or another state directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from inlet.config import load_settings
from inlet.lake.lake import Lake


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.lake)


@pytest.fixture(scope="session")
def lake() -> Iterator[Lake]:
    lake = Lake(load_settings())
    rows = lake.status()
    reuse = bool(rows) and all(r.ok for r in rows)
    if not reuse:
        rows = lake.up()
        bad = [r for r in rows if not r.ok]
        assert not bad, f"lake not healthy: {bad}"
    yield lake
    if not reuse and os.environ.get("INLET_KEEP_LAKE") != "1":
        lake.down()


@pytest.fixture(scope="session")
def rucio_env(lake: Lake) -> dict[str, str]:
    """Process environment for running the plain `rucio` CLI against the lake."""
    return {**os.environ, **lake.exports()}
