"""Chaos for the dress rehearsal: kill the flow's parts while data moves, restart them, time the healing.

A :class:`ChaosPlan` is a list of :class:`Fault` s: which part to ``kill -9``, when (seconds
after the first chunk), and how long it stays down before it is started again. A plan comes
from a file (TOML or JSON, ``[[fault]] target = "broker"; at = 10; pause = 5``) or from a seed
(every part once, at random times over the run, with random pauses: the same seed gives the
same plan).

The :class:`FaultInjector` plays the plan on a thread of its own, one fault at a time. Lake
services go down and up through :meth:`inlet.lake.lake.Lake.kill` / ``restart`` (the lake's
own start code); the rehearsal's own processes (its uploader worker, ``inlet listen``, the
event-driven downloader) through the callbacks the rehearsal gives it. Each fault records
when it was killed, when its part answered again, and any error; the report derives from
these and the chunks' timestamps how long each fault took to heal and what it cost.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inlet.errors import InletError

log = logging.getLogger(__name__)

#: Chaos target -> the lake service it is (None: a process of the rehearsal itself).
LAKE_TARGETS: dict[str, str] = {
    "broker": "activemq",
    "rucio": "rucio",
    "postgres": "postgres",
    "redis": "redis",
    "mariadb": "mariadb",
    "s3": "s3",
    "conveyor": "rucio-conveyor",
    "hermes": "rucio-hermes",
    "judge-evaluator": "rucio-judge-evaluator",
}
#: Processes the rehearsal runs itself.
OWN_TARGETS: tuple[str, ...] = ("worker", "event-downloader", "listener")
TARGETS: tuple[str, ...] = (*LAKE_TARGETS, *OWN_TARGETS)

#: A seeded plan's pauses (seconds down) are drawn from this range.
SEED_PAUSE = (3.0, 10.0)


class ChaosError(InletError, ValueError):
    """The chaos plan cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Fault:
    target: str
    #: Seconds after the first chunk was written.
    at: float
    #: Seconds the part stays down before it is started again.
    pause: float = 5.0
    # -- what happened (Unix times) --
    killed_at: float | None = None
    restarted_at: float | None = None
    #: When the part answered again (the lake's readiness probe, the worker's "ready.", ...).
    ready_at: float | None = None
    pid: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChaosPlan:
    faults: list[Fault] = field(default_factory=list)
    #: Where the plan came from: a file's path or "seed N".
    source: str = ""

    def check(self, run_seconds: float | None = None) -> None:
        for f in self.faults:
            if f.target not in TARGETS:
                raise ChaosError(f"chaos plan: unknown target {f.target!r}", f"use one of: {', '.join(TARGETS)}")
            if not (f.at >= 0 and f.pause >= 0) or f.at != f.at or f.pause != f.pause:
                raise ChaosError(
                    f"chaos plan: fault on {f.target} has at={f.at} pause={f.pause}",
                    "give seconds ≥ 0 for both",
                )
            if run_seconds is not None and f.at > run_seconds:
                raise ChaosError(
                    f"chaos plan: the {f.target} fault at {f.at:g} s comes after the last chunk "
                    f"({run_seconds:.0f} s into the run)",
                    "move it earlier, or rehearse longer (--duration)",
                )
        self.faults.sort(key=lambda f: f.at)

    @classmethod
    def seeded(cls, seed: int, run_seconds: float, targets: tuple[str, ...] = TARGETS) -> ChaosPlan:
        """Every target once, in a random order, spread over the first 80 % of the run."""
        rng = random.Random(seed)
        order = list(targets)
        rng.shuffle(order)
        span = max(1.0, run_seconds * 0.8)
        slot = span / len(order)
        faults = [
            Fault(
                t,
                at=round(0.05 * run_seconds + i * slot + rng.uniform(0, slot * 0.3), 1),
                pause=round(rng.uniform(*SEED_PAUSE), 1),
            )
            for i, t in enumerate(order)
        ]
        return cls(faults, f"seed {seed}")

    @classmethod
    def load(cls, spec: str, run_seconds: float) -> ChaosPlan:
        """A plan from ``spec``: an integer seed, or the path of a TOML/JSON plan file."""
        text = spec.strip()
        if text.lstrip("-").isdigit():
            plan = cls.seeded(int(text), run_seconds)
        else:
            path = Path(text)
            if not path.is_file():
                raise ChaosError(
                    f"--chaos {spec!r} is neither a seed nor a plan file", "give an integer or a file path"
                )
            try:
                raw = path.read_text()
                doc: Any = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
            except (OSError, ValueError) as exc:
                raise ChaosError(
                    f"chaos plan {path}: unreadable ({exc})", "give TOML ([[fault]] tables) or JSON"
                ) from exc
            items = doc.get("fault") if isinstance(doc, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ChaosError(
                    f"chaos plan {path}: no list of faults",
                    'write [[fault]] tables (TOML) or {"fault": [...]} (JSON), each with target, at, pause',
                )
            faults = []
            for item in items:
                unknown = set(item) - {"target", "at", "pause"}
                if unknown or "target" not in item or "at" not in item:
                    raise ChaosError(
                        f"chaos plan {path}: fault {item!r} needs target and at (and optional pause), nothing else",
                        f"targets: {', '.join(TARGETS)}",
                    )
                try:
                    faults.append(Fault(str(item["target"]), float(item["at"]), float(item.get("pause", 5.0))))
                except (TypeError, ValueError) as exc:
                    raise ChaosError(f"chaos plan {path}: fault {item!r}: {exc}", "at and pause are seconds") from exc
            plan = cls(faults, str(path))
        plan.check(run_seconds)
        return plan


#: kill(target) -> pid or None; restart(target) -> None once the part answers again.
Kill = Callable[[str], "int | None"]
Restart = Callable[[str], None]


class FaultInjector:
    """Plays a :class:`ChaosPlan` on its own thread, one fault after the other."""

    def __init__(self, plan: ChaosPlan, kill: Kill, restart: Restart) -> None:
        self.plan = plan
        self.kill = kill
        self.restart = restart
        self.stop = threading.Event()
        self.t0 = 0.0
        self.thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        #: Set while a part is down or restarting.
        self.busy = threading.Event()

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.thread.start()

    def _run(self) -> None:
        for f in self.plan.faults:
            if self.stop.wait(max(0.0, self.t0 + f.at - time.time())):
                return
            self.busy.set()
            try:
                self._one(f)
            finally:
                self.busy.clear()

    def _one(self, f: Fault) -> None:
        f.killed_at = time.time()
        try:
            f.pid = self.kill(f.target)
            log.warning("chaos: killed %s (pid %s)", f.target, f.pid)
        except Exception as exc:
            f.error = f"kill: {type(exc).__name__}: {exc}"
            log.error("chaos: could not kill %s: %s", f.target, exc)
        # The pause runs even if asked to stop: a part is never left down.
        time.sleep(f.pause)
        f.restarted_at = time.time()
        for attempt in range(3):
            try:
                self.restart(f.target)
                f.ready_at = time.time()
                log.warning("chaos: %s is back after %.1f s", f.target, f.ready_at - f.killed_at)
                return
            except Exception as exc:
                f.error = f"restart (attempt {attempt + 1}): {type(exc).__name__}: {exc}"
                log.error("chaos: restarting %s failed: %s", f.target, exc)
                time.sleep(2.0)

    def wait_done(self, timeout: float) -> bool:
        """Wait for the plan's faults to have run (each restarted); False on timeout."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=300)


def recovery(faults: list[dict[str, Any]], chunks: list[Any]) -> list[dict[str, Any]]:
    """Per fault: how long its part was down, how fast the flow healed, what it cost in latency.

    ``first_delivery_s``: from the part answering again to the first chunk the event-driven
    downloader delivered after that (None: nothing was left to deliver). ``backlog``: chunks
    closed before the part was back and not yet delivered when it was killed; ``drained_s``:
    from the part answering again to the last of them delivered (None while any is missing).
    The latency cost compares the end-to-end latency of the chunks closed while the fault
    lasted (kill to drained) with the median of the chunks no fault touched.
    """

    def e2e(c: Any) -> float | None:
        return c.event_done - c.closed if c.event_status == "downloaded" and c.event_done is not None else None

    windows: list[tuple[float, float, list[Any], float | None] | None] = []
    for f in faults:
        if f.get("killed_at") is None:
            windows.append(None)
            continue
        back = f.get("ready_at") or f.get("restarted_at") or f["killed_at"]
        backlog = [c for c in chunks if c.closed <= back and (c.event_done is None or c.event_done > f["killed_at"])]
        done = [c.event_done for c in backlog if c.event_done is not None]
        drained = max(done) if done and len(done) == len(backlog) else None
        windows.append((f["killed_at"], back, backlog, drained))
    touched = set()
    for w in windows:
        if w is not None:
            end = w[3] if w[3] is not None else float("inf")
            touched |= {c.index for c in chunks if w[0] <= c.closed <= end} | {c.index for c in w[2]}
    calm = sorted(v for c in chunks if c.index not in touched and (v := e2e(c)) is not None)
    baseline = calm[len(calm) // 2] if calm else None
    out = []
    for f, w in zip(faults, windows, strict=True):
        row: dict[str, Any] = {"target": f["target"], "at": f["at"], "pause": f["pause"], "error": f.get("error")}
        if w is None:
            out.append(row)
            continue
        killed, back, backlog, drained = w
        after = [c.event_done for c in chunks if c.event_done is not None and c.event_done >= back]
        end = drained if drained is not None else float("inf")
        hit = [v for c in chunks if (killed <= c.closed <= end or c in backlog) and (v := e2e(c)) is not None]
        hit.sort()
        row.update(
            {
                "down_s": back - killed,
                "first_delivery_s": (min(after) - back) if after else None,
                "backlog": len(backlog),
                # 0: the backlog was delivered before the part was even back (it did not need it).
                "drained_s": max(0.0, drained - back) if drained is not None else None,
                "chunks_hit": len(hit),
                "median_e2e_s": hit[len(hit) // 2] if hit else None,
                "baseline_e2e_s": baseline,
                "extra_latency_s": sum(max(0.0, v - baseline) for v in hit) if baseline is not None else None,
            }
        )
        out.append(row)
    return out
