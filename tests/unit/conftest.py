"""Unit tests see inlet's defaults, whatever INLET_* variables the developer's shell exports."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_inlet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("INLET_"):
            monkeypatch.delenv(key)
