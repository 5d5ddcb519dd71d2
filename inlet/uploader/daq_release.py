"""Freeing the DAQ disk: a local copy goes only when every rule of its file is OK.

The uploader remembers each registered file it may free as a small JSON record (where the
DAQ copy is, its size and checksums). Two things trigger a release attempt:

* the listener's ``daq-release`` event on the inlet topic (its release handler sends it
  when the rules of a file are all OK), for low latency;
* a poll of Rucio for every record still waiting, as the fallback when an event was missed.

Either way the decision is re-checked against Rucio (all rules covering the file OK) and
against the local bytes (size and adler32 as registered) right before deleting or moving
the file; a record whose local copy differs is kept and alarmed, never deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from inlet.event_contract import DAQ_RELEASE
from inlet.uploader.digest import digest_file

log = logging.getLogger(__name__)
alarm = logging.getLogger("inlet.uploader.alarm")


@dataclass(frozen=True)
class Pending:
    scope: str
    name: str
    path: str
    size: int
    adler32: str
    md5: str


class PendingStore:
    """One JSON file per DAQ copy awaiting release, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, scope: str, name: str) -> Path:
        return self.root / quote(scope, safe="") / f"{quote(name, safe='')}.json"

    def add(self, p: Pending) -> None:
        f = self._file(p.scope, p.name)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(p)))
        tmp.replace(f)

    def get(self, scope: str, name: str) -> Pending | None:
        f = self._file(scope, name)
        try:
            return Pending(**json.loads(f.read_text()))
        except FileNotFoundError:
            return None

    def drop(self, scope: str, name: str) -> None:
        self._file(scope, name).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[Pending]:
        if not self.root.is_dir():
            return
        for f in sorted(self.root.glob("*/*.json")):
            try:
                yield Pending(**json.loads(f.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("unreadable release record %s: %s", f, exc)


RuleStates = Callable[[str, str], dict[str, str]]


def rucio_rule_states(scope: str, name: str) -> dict[str, str]:
    """rule id -> state of every rule that must protect the file, its own and its datasets'.

    A rule of a parent dataset counts only once it holds a lock on this very file: right
    after an attach the dataset's rule may still say OK from before (the judge has not yet
    evaluated the new file), and a rule waiting for injection has no locks at all. Such a
    rule shows as '<state>/NO-LOCK', which is not OK.
    """
    from rucio.client import Client

    c = Client()
    locked = {r["id"]: r["state"] for r in c.list_associated_rules_for_file(scope, name)}
    wanted = {r["id"]: r["state"] for r in c.list_did_rules(scope, name)}
    level = [(scope, name)]
    for _ in range(3):  # file -> dataset -> container -> container
        parents = [(p["scope"], p["name"]) for s, n in level for p in c.list_parent_dids(s, n)]
        for s, n in parents:
            wanted.update({r["id"]: r["state"] for r in c.list_did_rules(s, n)})
        level = parents
    out = dict(locked)
    for rule_id, state in wanted.items():
        if rule_id not in locked:
            out[rule_id] = f"{state}/NO-LOCK"
    return out


class Releaser:
    def __init__(self, store: PendingStore, done_dir: Path | None, rule_states: RuleStates = rucio_rule_states) -> None:
        self.store = store
        self.done_dir = done_dir
        self.rule_states = rule_states

    def release(self, scope: str, name: str) -> bool:
        """Free the DAQ copy of scope:name if it is safe now; True if it was freed."""
        p = self.store.get(scope, name)
        if p is None:
            return False
        states = self.rule_states(scope, name)
        if not states or any(s != "OK" for s in states.values()):
            log.debug("%s:%s not released: rules %s", scope, name, states)
            return False
        local = Path(p.path)
        if not local.exists():
            log.info("%s:%s: the DAQ copy %s is already gone", scope, name, local)
            self.store.drop(scope, name)
            return False
        d = digest_file(local)
        if (d.size, d.adler32) != (p.size, p.adler32):
            alarm.error(
                "ALARM %s:%s: DAQ copy %s now has size %d adler32 %s, registered %d %s: NOT released",
                scope,
                name,
                local,
                d.size,
                d.adler32,
                p.size,
                p.adler32,
            )
            return False
        if self.done_dir is not None:
            self.done_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(local), str(self.done_dir / local.name))
            how = f"moved to {self.done_dir}"
        else:
            local.unlink()
            how = "deleted"
        self.store.drop(scope, name)
        log.info("%s:%s safe (%d rules OK): DAQ copy %s %s", scope, name, len(states), local, how)
        return True

    def on_event(self, doc: dict[str, Any]) -> None:
        if doc.get("event_type") != DAQ_RELEASE:
            return
        payload = doc.get("payload") or {}
        scope, name = payload.get("scope"), payload.get("name")
        if isinstance(scope, str) and isinstance(name, str):
            try:
                self.release(scope, name)
            except Exception:
                log.exception("release of %s:%s failed; the poll retries it", scope, name)

    def poll_once(self) -> int:
        freed = 0
        waiting = list(self.store)
        for p in waiting:
            try:
                freed += self.release(p.scope, p.name)
            except Exception:
                log.exception("release of %s:%s failed; next poll retries", p.scope, p.name)
        log.info("release poll: %d released, %d waiting", freed, len(waiting) - freed)
        return freed

    def run(self, interval: float, stop: Callable[[], bool], subscribe: Callable[[], None] | None = None) -> None:
        """Poll every ``interval`` s (events act in between through ``on_event``) until ``stop()``."""
        while not stop():
            if subscribe is not None:
                try:
                    subscribe()
                except Exception as exc:
                    log.warning("inlet topic subscription failed (%s); polling only until it works", exc)
            self.poll_once()
            deadline = time.monotonic() + interval
            while not stop() and time.monotonic() < deadline:
                time.sleep(0.2)
