"""Every permission action of Rucio 41 is classified by inlet (rucio_inlet.actions).

The actions are read from Rucio's own source: the dispatch table of
``rucio.core.permission.generic.has_permission`` and every ``has_permission(action=...)`` call of
``rucio.gateway``. A Rucio release that adds one makes this test fail until someone decides
whether it is harmless (and writes why) or needs a check.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from rucio_inlet.actions import ACTIONS, handled

RUCIO = Path(importlib.util.find_spec("rucio").submodule_search_locations[0])  # type: ignore[index, union-attr]


def generic_actions(source: str) -> set[str]:
    """The keys of the dict literal in generic's has_permission."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "has_permission":
            for d in ast.walk(node):
                if isinstance(d, ast.Dict):
                    return {k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    raise AssertionError("no dispatch dict found in rucio.core.permission.generic.has_permission")


def gateway_actions(root: Path) -> set[str]:
    found = set()
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name == "has_permission":
                    for kw in node.keywords:
                        if kw.arg == "action" and isinstance(kw.value, ast.Constant):
                            found.add(str(kw.value.value))
    return found


def unclassified(actions: set[str]) -> list[str]:
    return sorted(a for a in actions if a not in ACTIONS)


def test_every_generic_action_is_classified() -> None:
    actions = generic_actions((RUCIO / "core" / "permission" / "generic.py").read_text())
    assert len(actions) > 80  # the parser really found Rucio 41's table
    assert unclassified(actions) == []


def test_every_action_the_gateway_asks_for_is_classified() -> None:
    actions = gateway_actions(RUCIO / "gateway")
    assert {"add_rule", "attach_dids", "set_tombstone"} <= actions
    assert unclassified(actions) == []


def test_a_new_rucio_action_is_reported() -> None:
    source = (
        "def has_permission(issuer, action, kwargs, session):\n    perm = {'add_rule': f, 'teleport_replicas': g}\n"
    )
    assert unclassified(generic_actions(source)) == ["teleport_replicas"]


def test_harmless_entries_give_a_reason() -> None:
    for action, how in ACTIONS.items():
        if how.startswith("harmless:"):
            assert len(how.removeprefix("harmless:").strip()) > 10, action
        else:
            assert how.startswith("perm_"), action


def _params(module: str, function: str) -> set[str]:
    tree = ast.parse((RUCIO / "gateway" / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return {a.arg for a in node.args.args + node.args.kwonlyargs}
    raise AssertionError(f"rucio.gateway.{module}.{function} is gone")


@pytest.mark.parametrize(
    ("module", "function", "names"),
    [
        ("did", "add_did", {"dids", "rse"}),
        ("replica", "add_replicas", {"files"}),
        ("subscription", "add_subscription", {"replication_rules"}),
        ("subscription", "update_subscription", {"metadata"}),
    ],
)
def test_gateway_arguments_read_by_the_policy_still_exist(module: str, function: str, names: set[str]) -> None:
    """permission._gateway_args reads these from the gateway's frame (Rucio does not pass them)."""
    assert names <= _params(module, function)


def test_delete_metadata_still_runs_no_permission_check() -> None:
    """If Rucio adds a check, inlet should decide it too (today the metadata plugin refuses)."""
    source = (RUCIO / "gateway" / "did.py").read_text()
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "delete_metadata")
    assert "has_permission" not in ast.unparse(fn)


def test_handled_actions_dispatch_to_the_named_functions(permission: ModuleType) -> None:
    checks = permission._CHECKS
    assert {a: f.__name__ for a, f in checks.items()} == handled()
