from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inlet.catalog import Catalog, open_catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield cat
    cat.dispose()
