"""Which handlers an event goes to: routes from ``[[listener.routes]]``, handlers by name.

Handlers are looked up first among the built-ins, then in the ``inlet.handlers``
entry-point group, so that an experiment's package adds handlers by being installed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

from inlet.config import ListenerRoute, ListenerSettings
from inlet.errors import InletError
from inlet.listener.events import Event
from inlet.listener.handlers.base import Handler, HandlerFactory

ENTRY_POINT_GROUP = "inlet.handlers"


class RoutingError(InletError):
    """A configuration problem in the routes, with the fix in the message."""


def builtin_factories() -> dict[str, HandlerFactory]:
    # Imported here: a built-in's dependencies are only loaded when the listener starts.
    from inlet.listener.handlers.alarms import AlarmHandler
    from inlet.listener.handlers.catalog import CatalogHandler
    from inlet.listener.handlers.release import ReleaseHandler
    from inlet.listener.reco import RecoHandler

    return {
        "catalog": CatalogHandler,
        "daq-release": ReleaseHandler,
        "alarms": AlarmHandler,
        "reco": RecoHandler,
    }


def load_factory(name: str) -> HandlerFactory:
    builtins = builtin_factories()
    if name in builtins:
        return builtins[name]
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        plugins = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise RoutingError(
            f"handler {name!r} is neither built in ({', '.join(sorted(builtins))}) nor an installed "
            f"'{ENTRY_POINT_GROUP}' entry point ({', '.join(plugins) or 'none installed'}); "
            "fix the route's handler name or install the package that provides it"
        )
    try:
        factory = found[0].load()
    except Exception as exc:
        raise RoutingError(f"handler {name!r}: loading entry point {found[0].value!r} failed: {exc}") from exc
    if not callable(factory):
        raise RoutingError(f"handler {name!r}: entry point {found[0].value!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _parse_runs(specs: Iterable[str]) -> list[tuple[int, int]]:
    out = []
    for spec in specs:
        lo, sep, hi = spec.strip().partition("-")
        try:
            out.append((int(lo), int(hi) if sep else int(lo)))
        except ValueError:
            raise RoutingError(f"route runs entry {spec!r}: write a run number '42' or a range '100-200'") from None
    return out


def _matches(patterns: list[str], value: str | None, *, absent_passes: bool = False) -> bool:
    if not patterns:
        return True
    if value is None:
        return absent_passes
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass
class Route:
    spec: ListenerRoute
    handler: Handler
    runs: list[tuple[int, int]]

    def matches(self, event: Event, run_of: Callable[[Event], int | None]) -> bool:
        s = self.spec
        if not _matches(s.event_types, event.event_type):
            return False
        if not _matches(s.scopes, event.scope):
            return False
        if not _matches(s.datasets, event.dataset):
            return False
        # rule_ok carries no RSE: the handler resolves the rule's RSEs itself.
        if not _matches(s.rses, event.rse, absent_passes=True):
            return False
        if self.runs:
            run = run_of(event)
            if run is None or not any(lo <= run <= hi for lo, hi in self.runs):
                return False
        return True


class Router:
    def __init__(self, settings: ListenerSettings, routes: list[Route]) -> None:
        self.settings = settings
        self.routes = routes
        try:
            self.run_pattern = re.compile(settings.run_pattern)
        except re.error as exc:
            raise RoutingError(
                f"[listener] run_pattern {settings.run_pattern!r} is not a regular expression: {exc}"
            ) from None
        if "run" not in self.run_pattern.groupindex:
            raise RoutingError(f"[listener] run_pattern {settings.run_pattern!r} needs a named group (?P<run>\\d+)")

    @classmethod
    def from_settings(cls, settings: ListenerSettings) -> Router:
        """Build every configured handler once; a bad route stops the listener before it consumes."""
        handlers: dict[tuple[str, str], Handler] = {}
        routes = []
        for spec in settings.routes:
            key = (spec.handler, repr(sorted(spec.options.items())))
            if key not in handlers:
                handlers[key] = load_factory(spec.handler)(settings, dict(spec.options))
            routes.append(Route(spec, handlers[key], _parse_runs(spec.runs)))
        names: dict[str, Handler] = {}
        for h in handlers.values():
            if names.setdefault(h.name, h) is not h:
                raise RoutingError(
                    f"two routes build handler {h.name!r} with different options: the ledger could not tell "
                    "their work apart; give both routes the same options (or wrap one under another name)"
                )
        return cls(settings, routes)

    def run_of(self, event: Event) -> int | None:
        return event.run_number(self.run_pattern)

    def handlers_for(self, event: Event) -> list[Handler]:
        """Each matching handler once, in route order."""
        out: list[Handler] = []
        for route in self.routes:
            if route.handler not in out and route.matches(event, self.run_of):
                out.append(route.handler)
        return out
