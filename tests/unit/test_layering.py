"""The architecture's one-way rules, checked on the source so a violation fails CI:

- code loaded inside Rucio (plugins, policies) imports nothing of the CLI or the services;
- the uploader and the listener never import each other (they meet through broker and catalogue);
- the web server imports neither the CLI nor the listener's metrics and service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "inlet"

FORBIDDEN = {
    "plugins": ("inlet.cli", "inlet.lake", "inlet.uploader", "inlet.listener"),
    "policies": ("inlet.cli", "inlet.lake", "inlet.uploader", "inlet.listener"),
    "uploader": ("inlet.listener",),
    "listener": ("inlet.uploader",),
    "catalog": ("inlet.cli", "inlet.lake", "inlet.uploader", "inlet.listener"),
    # The web server reads what the services write; it is not part of the CLI, and it must not
    # pull the listener's metrics into its own endpoint (inlet.listener.metrics).
    "web": ("inlet.cli", "inlet.lake", "inlet.listener.metrics", "inlet.listener.service"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_boundaries(package: str) -> None:
    root = PKG / package
    offenders = []
    for path in sorted(root.rglob("*.py")) if root.exists() else []:
        for mod in imported_modules(path):
            if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[package]):
                offenders.append(f"{path.relative_to(PKG.parent)} imports {mod}")
    assert not offenders, "\n".join(offenders)


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from inlet.listener.service import Listener\nimport inlet.cli.main\n")
    assert imported_modules(bad) == {"inlet.listener.service", "inlet.cli.main"}
