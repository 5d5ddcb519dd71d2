"""README stays true: its configuration reference is the one the code generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_config_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update-readme.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (ROOT / "README.md").read_text()
    assert mod.render(text) == text, "README is stale: run .venv/bin/python scripts/update-readme.py"


def test_readme_commands_exist() -> None:
    text = (ROOT / "README.md").read_text()
    for script in ("scripts/main.sh", "scripts/test.sh"):
        assert f"bash {script}" in text
        assert (ROOT / script).is_file()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
