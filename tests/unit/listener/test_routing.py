from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inlet.config import ListenerRoute, ListenerSettings
from inlet.listener.events import Event, parse_message
from inlet.listener.routing import Router, RoutingError


def event(event_type: str, **payload: Any) -> Event:
    body = {"event_type": event_type, "payload": payload, "created_at": "2026-11-21T00:00:00"}
    return parse_message(json.dumps(body).encode(), {}, 10_000)


def names(router: Router, ev: Event) -> list[str]:
    return [h.name for h in router.handlers_for(ev)]


def test_default_routes_send_transfers_to_catalog_release_and_failures_to_alarms() -> None:
    router = Router.from_settings(ListenerSettings())
    assert names(router, event("transfer-done", scope="s", name="n", **{"dst-rse": "S3"})) == ["catalog", "daq-release"]
    assert names(router, event("transfer-failed", scope="s", name="n")) == ["alarms"]
    assert names(router, event("file-quarantined", source="/daq/x", kind="bad-name", reason="r")) == ["alarms"]
    assert names(router, event("deletion-done", scope="s", name="n")) == []


def test_filters_on_type_scope_dataset_rse_and_run() -> None:
    route = ListenerRoute(
        handler="alarms",
        event_types=["transfer-*"],
        scopes=["cygno"],
        datasets=["run*_raw"],
        rses=["S3", "TAPE"],
        runs=["100-200", "7"],
    )
    router = Router.from_settings(ListenerSettings(routes=[route]))
    ok = {"scope": "cygno", "name": "run00150_001.dat", "dataset": "run150_raw", "dst-rse": "TAPE"}
    assert names(router, event("transfer-done", **ok)) == ["alarms"]
    assert names(router, event("rule_ok", **ok)) == []
    assert names(router, event("transfer-done", **{**ok, "scope": "kloe"})) == []
    assert names(router, event("transfer-done", **{**ok, "dataset": "calib"})) == []
    assert names(router, event("transfer-done", **{**ok, "dst-rse": "SITE_A_DISK"})) == []
    assert names(router, event("transfer-done", **{**ok, "name": "run00250_001.dat", "dataset": "run250_raw"})) == []
    assert names(router, event("transfer-done", **{**ok, "name": "run7.dat", "dataset": "run7_raw"})) == ["alarms"]
    # An event without an RSE (rule_ok) is not excluded by an RSE filter: the handler resolves it.
    no_rse = {k: v for k, v in ok.items() if k != "dst-rse"}
    router2 = Router.from_settings(ListenerSettings(routes=[ListenerRoute(handler="alarms", rses=["S3"])]))
    assert names(router2, event("rule_ok", **no_rse)) == ["alarms"]


def test_an_unknown_handler_names_the_known_ones() -> None:
    with pytest.raises(
        RoutingError, match=r"handler 'nope' is neither built in \(alarms, catalog, daq-release, reco\)"
    ):
        Router.from_settings(ListenerSettings(routes=[ListenerRoute(handler="nope")]))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ListenerSettings(routes=[ListenerRoute(handler="alarms", runs=["a-b"])]), "write a run number '42'"),
        (ListenerSettings(run_pattern="run(\\d+"), "is not a regular expression"),
        (ListenerSettings(run_pattern="run(\\d+)"), "needs a named group"),
    ],
)
def test_bad_route_settings_fail_with_the_fix(settings: ListenerSettings, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        Router.from_settings(settings)


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    """A package that provides a handler through the `inlet.handlers` entry-point group."""
    (tmp_path / "inlet_unit_plugin.py").write_text(
        "class H:\n    name = 'mine'\n    def __init__(self, s, o):\n        self.options = o\n"
        "    def handle(self, event, ctx):\n        pass\n"
        "def make(settings, options):\n    return H(settings, options)\n"
    )
    dist = tmp_path / "inlet_unit_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: inlet-unit-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[inlet.handlers]\nmine = inlet_unit_plugin:make\nbroken = nowhere:make\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("inlet_unit_plugin", None)


def test_an_installed_entry_point_provides_a_handler(plugin: Path) -> None:
    router = Router.from_settings(
        ListenerSettings(routes=[ListenerRoute(handler="mine", event_types=["x"], options={"k": 1})])
    )
    (handler,) = router.handlers_for(event("x"))
    assert handler.name == "mine" and handler.options == {"k": 1}  # type: ignore[attr-defined]
    with pytest.raises(RoutingError, match="handler 'broken': loading entry point 'nowhere:make' failed"):
        Router.from_settings(ListenerSettings(routes=[ListenerRoute(handler="broken")]))
