"""One dress rehearsal, start to finish: DAQ → uploader → site A → rule → site B → two downloaders.

The rehearsal runs its own Celery worker on a queue of its own, with a stream policy of its
own (rules to site B and any extra RSEs), so it neither takes nor leaves work in an
experiment's production queue. It feeds that worker exactly as ``inlet watch`` does: closed
files (sidecar written) found by :class:`inlet.uploader.watch.ClosedFileDetector`, queued with
:func:`inlet.uploader.api.submit`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inlet.config import Settings
from inlet.errors import InletError
from inlet.lake import usage
from inlet.rehearse.chaos import LAKE_TARGETS, ChaosPlan, FaultInjector
from inlet.rehearse.chunks import StrainSource, chunk_name, gps_now, write_chunk
from inlet.rehearse.loop import RECO_SCOPE, ListenerLoop, effects, rules_not_ok
from inlet.rehearse.procs import OwnProcess
from inlet.rehearse.timeline import MARK_KEYS, ChunkTimes, Timeline, marks
from inlet.uploader.batching import Gatherer

log = logging.getLogger(__name__)

#: Processes of the rehearsal's uploader worker; also the batches the DAQ watcher keeps in flight.
WORKER_CONCURRENCY = 2


#: Seconds before Redis hands a killed worker's task to the next worker, in a chaos rehearsal.
CHAOS_VISIBILITY_TIMEOUT = 20


class RehearsalError(InletError, RuntimeError):
    """The rehearsal cannot run as asked; the message says why and what to change."""


@dataclass
class RehearsalPlan:
    """What to replay. ``chunks`` at ``rate`` per second of data, played ``speedup`` times faster."""

    chunks: int
    rate: float = 1.0
    chunk_size: int = 85_000
    speedup: float = 1.0
    download_rse: str = "SITE_B_DISK"
    extra_rses: list[str] = field(default_factory=list)
    poll_interval: float = 5.0
    download_workers: int = 4
    drain_timeout: float = 180.0
    experiment: str = "virgo"
    stream: str = "hrec"
    run: int | None = None
    corrupt: list[int] = field(default_factory=list)
    keep_downloads: bool = False
    #: Grouping of the run dataset's rule to site A (see ``RulePolicy.grouping``).
    grouping: str = "auto"
    #: Close the run dataset at the end (false: a later rehearsal with the same --run goes on filling it).
    end_run: bool = True
    #: Kill and restart the flow's parts while it runs (``--chaos``); the run then goes on to RECONSTRUCTED.
    chaos: ChaosPlan | None = None

    @property
    def interval(self) -> float:
        """Wall-clock seconds between two chunks."""
        return 1.0 / (self.rate * self.speedup)

    def check(self) -> None:
        if self.chunks < 1:
            raise ValueError("nothing to rehearse: give at least one chunk (--duration x --rate ≥ 1)")
        if self.rate <= 0 or self.speedup <= 0:
            raise ValueError("--rate and --speedup must be positive")
        if self.chaos is not None:
            if not self.end_run:
                raise ValueError("--chaos takes the run to RECONSTRUCTED: it cannot be combined with --keep-run-open")
            self.chaos.check(self.chunks / (self.rate * self.speedup))
        if self.grouping not in ("auto", "DATASET", "NONE"):
            raise ValueError(f"--dataset-grouping {self.grouping!r}: give auto, DATASET or NONE")
        bad = [i for i in self.corrupt if not 0 <= i < self.chunks]
        if bad:
            raise ValueError(f"--corrupt {bad}: chunk indexes go from 0 to {self.chunks - 1}")


#: Live counters for the progress display.
Progress = Callable[[dict[str, Any]], None]


def counts(chunks: list[ChunkTimes]) -> dict[str, int]:
    out = dict.fromkeys(MARK_KEYS, 0)
    for c in chunks:
        for key, n in marks(c).items():
            out[key] += n
    return out


def running_median(chunks: list[ChunkTimes], start: str, end: str) -> float | None:
    values = [v for c in chunks if (v := c.hop(start, end)) is not None]
    return statistics.median(values) if values else None


class Rehearsal:
    def __init__(self, settings: Settings, plan: RehearsalPlan, out: Path) -> None:
        plan.check()
        self.settings = settings
        #: The lake's own settings, kept apart: a chaos run points *its* catalogue at the lake's
        #: MariaDB (``_chaos_catalog``), and a lake service restarted with that would rewrite the
        #: lake's rucio.cfg to it, for every later user of the lake.
        self.lake_settings = settings.model_copy(deep=True)
        self.plan = plan
        self.out = out
        self.daq = out / "daq"
        self.timeline = Timeline()
        self.run = plan.run if plan.run is not None else int(time.time()) % 900_000 + 100_000
        self.queue = f"inlet.rehearse.{uuid.uuid4().hex[:8]}"
        self.worker: OwnProcess | None = None
        self.started_at = 0.0
        self.finished_at = 0.0
        self.run_state: str | None = None
        self.notes: list[str] = []
        #: Set by :meth:`interrupt` (Ctrl-C): stop writing chunks, settle what was sent, report it.
        self.interrupted = threading.Event()
        #: CPU samples at the start and the end of the steady segment (see :meth:`cpu_report`).
        self.segment: list[usage.Sample] = []
        #: Lake CPU of one listing of the run dataset by the polling baseline, measured after the run.
        self.listing_cost: dict[str, float] | None = None
        #: Each group's CPU seconds per second with nothing moving, measured after the run.
        self.idle_rate: dict[str, float] = {}
        #: The polling baseline's listing count at each segment sample.
        self.segment_listings: list[int] = []
        self._polling: Any = None
        #: Downloads beyond a chunk's first, per downloader (a chaos run requires 0).
        self.duplicate_downloads: dict[str, int] = {}
        #: Chunks the event downloader fetched by its catch-up listing after a reconnect.
        self.caught_up = 0
        #: What the run caused in the catalogue, the outbox and Rucio (chaos runs: see loop.effects).
        self.effects: dict[str, Any] | None = None
        self.rules_not_ok: list[str] | None = None
        self._gatherer: Gatherer | None = None

    def interrupt(self) -> None:
        self.interrupted.set()

    # -- set-up -----------------------------------------------------------------------------
    def stream_policy(self) -> dict[str, Any]:
        first = self.settings.uploader.first_rse
        targets = [self.plan.download_rse, *[r for r in self.plan.extra_rses if r != self.plan.download_rse]]
        rules: list[dict[str, Any]] = [{"rse_expression": first, "notify": "N", "grouping": self.plan.grouping}]
        # Per file: each chunk's transfer is requested as it is registered (see RulePolicy.per_file).
        rules += [{"rse_expression": r, "notify": "Y", "per_file": True} for r in targets if r != first]
        # The DAQ directory is the rehearsal's own scratch space: nothing to free there.
        return {"tier": "raw", "rules": rules, "release": False}

    def prepare_env(self) -> dict[str, str]:
        """The environment of this process (before the uploader is imported) and of the worker."""
        catalog = self._chaos_catalog()
        env = {
            **({"INLET_CATALOG__URL": catalog} if catalog else {}),
            "INLET_UPLOADER__QUEUE": self.queue,
            "INLET_UPLOADER__STREAMS": json.dumps({"rehearse": self.stream_policy()}),
            "INLET_UPLOADER__STATE_DIR": str(self.out / "uploader-state"),
            "INLET_UPLOADER__QUARANTINE_DIR": str(self.out / "quarantine"),
            # The rehearsal's DAQ directory is the one root its worker reads from.
            "INLET_UPLOADER__DAQ_ROOTS": json.dumps([str(self.daq.absolute())]),
        }
        os.environ.update(env)
        return {**os.environ, **env}

    def _chaos_catalog(self) -> str | None:
        """With ``--chaos``, the lake's MariaDB as the run catalogue when none is configured.

        The default catalogue is a SQLite file, which the worker's processes, the listener and the
        reco worker then share: under a restart storm it answers "database is locked". And the
        drill's MariaDB kill must hit the catalogue the flow writes to.
        """
        if self.plan.chaos is None or self.settings.catalog.url or "mariadb" not in self.settings.lake.manage:
            return None
        from inlet.catalog import open_catalog
        from inlet.lake.lake import Lake
        from inlet.lake.services.mariadb import MariaDB

        lake = Lake(self.settings)
        url = MariaDB(self.settings, lake.paths).url
        open_catalog(url).dispose()  # the schema, migrated
        self.settings.catalog.url = url
        self.notes.append("the run catalogue is the lake's MariaDB (chaos: its kill hits the flow's catalogue)")
        return url

    def start_worker(self, env: dict[str, str]) -> None:
        from inlet.rehearse.procs import OwnProcess

        celery = Path(sys.executable).parent / "celery"
        if not celery.exists():
            raise RehearsalError(f"{celery} is missing: install inlet with its dependencies (scripts/setup.sh)")
        argv = [
            str(celery),
            "-A",
            "inlet.uploader",
            "worker",
            "-Q",
            self.queue,
            "-c",
            str(WORKER_CONCURRENCY),
            "-n",
            f"rehearse-{self.queue[-8:]}@%h",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self.worker = OwnProcess("Celery worker", argv, env, self.out / "worker.log", b"ready.")
        self.worker.start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    # -- the run ----------------------------------------------------------------------------
    def execute(self, progress: Progress | None = None) -> list[ChunkTimes]:
        """Run the rehearsal; returns every chunk's record (also kept in ``self.timeline``)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.daq.mkdir(parents=True, exist_ok=True)
        env = self.prepare_env()
        from inlet.rehearse.downloaders import Drill, EventDownloader, PollingDownloader, SiteB
        from inlet.uploader import api, app_runtime
        from inlet.uploader.watch import ClosedFileDetector

        app_runtime.settings()  # sets RUCIO_CONFIG for this process before Rucio is imported
        p = self.plan
        try:
            site = SiteB(p.download_rse)
        except Exception as exc:
            raise RehearsalError(f"site B {p.download_rse!r}: {exc} (see `rucio rse list`; pass --rse)") from exc
        if p.corrupt and not site.posix:
            raise RehearsalError(
                f"--corrupt needs a POSIX site B (file:// replicas it can damage in place); {p.download_rse} is not"
            )
        drill = Drill(set())
        scope = f"{p.experiment}.raw"
        suffix = self.settings.uploader.sidecar_suffix

        def free_daq_copy(name: str) -> None:
            # The chunk is safe at site A: the DAQ directory stays small, so the watcher's scans
            # stay cheap over the 14,400 chunks of a full rehearsal.
            if p.chaos is not None:
                # A batch cut short by a kill is done again from the DAQ copies: they stay until the end.
                return
            for path in (self.daq / name, self.daq / f"{name}{suffix}"):
                path.unlink(missing_ok=True)

        events = EventDownloader(
            self.settings.broker,
            site,
            self.timeline,
            self.out / "downloads" / "events",
            p.download_workers,
            drill,
            p.keep_downloads,
            on_registered=free_daq_copy,
            datasets=[(scope, f"run{self.run:06d}.raw")],
        )
        polling = PollingDownloader(
            site,
            self.timeline,
            self.out / "downloads" / "polling",
            p.download_workers,
            drill,
            [(scope, f"run{self.run:06d}.raw")],
            p.poll_interval,
            p.keep_downloads,
        )
        self._polling = polling
        if p.chaos is not None:
            # A killed worker's task goes back to the queue after this long (default: an hour).
            env["INLET_UPLOADER__VISIBILITY_TIMEOUT"] = str(CHAOS_VISIBILITY_TIMEOUT)
        self.start_worker(env)
        stop = threading.Event()
        loop: ListenerLoop | None = None
        injector: FaultInjector | None = None
        try:
            events.start()
            polling.start()
            detector = ClosedFileDetector(self.daq, 0.0, self.settings.uploader.sidecar_suffix)

            # inlet watch's loop, scanning often: with a sidecar a file is taken at once. While
            # the worker's processes all have a batch of ours, closed files gather into the next
            # batch instead of queueing one task each: one file per batch when the flow keeps up,
            # bigger batches (fewer REST calls per file) when it falls behind (batching.py).
            gatherer = Gatherer(
                lambda batch: api.submit(batch, self.run, "rehearse", p.experiment)[0],
                self.settings.uploader.batch_size,
                WORKER_CONCURRENCY,
            )
            self._gatherer = gatherer

            def watch() -> None:
                while not stop.is_set():
                    try:
                        gatherer.add(
                            [
                                {"path": str(c.path), "size": c.path.stat().st_size, "sidecar": c.sidecar}
                                for c in detector.scan()
                            ]
                        )
                        gatherer.flush()
                    except Exception as exc:
                        # Redis restarting (the chaos drill): the files stay in the gatherer. Any
                        # other failure must not end this thread either: a dead watcher loses every
                        # file closed after it.
                        log.warning("queueing %d file(s) failed (%s); retrying", len(gatherer.pending), exc)
                        stop.wait(0.5)
                    stop.wait(0.02)

            watcher = threading.Thread(target=watch, name="daq-watch", daemon=True)
            watcher.start()
            if p.chaos is not None:
                loop = self._start_loop(env)
                injector = self._injector(events, loop)
            self.started_at = time.time()
            if injector is not None:
                injector.start(self.started_at)
            self._generate(drill, events, progress)
            # The run is over: close its dataset, as the DAQ's end-of-run would.
            sent = len(self.timeline.chunks)
            end = None
            if p.end_run:
                _, end = self._retrying(
                    "closing the run",
                    lambda: api.submit([], self.run, "rehearse", p.experiment, end_run=True, expected_files=sent),
                )
            if injector is not None:
                # Every fault has its part back before the run is settled and judged.
                injector.wait_done(sum(f.pause for f in p.chaos.faults) + 600 if p.chaos else 0)
            self._drain(events, progress)
            self._end_segment_when_events_done(force=True)
            self.listing_cost = self._listing_cost(polling)
            try:
                self.run_state = end.get(timeout=60 if loop is None else p.drain_timeout) if end is not None else None
            except Exception as exc:
                self.notes.append(f"closing the run dataset did not finish: {exc}")
            if loop is not None:
                self._life_cycle(loop)
            stop.set()
            watcher.join(timeout=10)
        finally:
            stop.set()
            if injector is not None:
                injector.close()
            polling.close()
            events.close()
            self.stop_worker()
            if loop is not None:
                loop.stop()
            self.duplicate_downloads = {"events": events.fetcher.duplicates(), "polling": polling.fetcher.duplicates()}
            self.caught_up = events.caught_up
            self.finished_at = time.time()
            if not p.keep_downloads:
                shutil.rmtree(self.out / "downloads", ignore_errors=True)
            shutil.rmtree(self.daq, ignore_errors=True)
        if events.reconnects:
            self.notes.append(f"the event downloader reconnected to the broker {events.reconnects} time(s)")
        if self._gatherer is not None and self._gatherer.sizes:
            sizes = sorted(self._gatherer.sizes)
            self.notes.append(
                f"{len(sizes)} upload batches, files per batch: median {statistics.median(sizes):g}, "
                f"max {sizes[-1]} (batches grow while the worker is behind)"
            )
        self.notes.append(f"the polling downloader listed the dataset {polling.listings} times")
        return self.timeline.snapshot()

    # -- chaos --------------------------------------------------------------------------------
    def chaos_report(self, chunks: list[ChunkTimes], totals: dict[str, int]) -> dict[str, Any] | None:
        """The chaos section of the report, with the pass condition's failures (none: it passed)."""
        from inlet.rehearse.chaos import recovery

        chaos = self.plan.chaos
        if chaos is None:
            return None
        faults = [f.as_dict() for f in chaos.faults]
        rows = recovery(faults, chunks)
        for f, r in zip(faults, rows, strict=True):
            f.update(r)
            # When it really happened: faults play one after the other, so a long restart delays the next.
            f["killed_s"] = f["killed_at"] - self.started_at if f.get("killed_at") else None
        failures = []
        for key in ("lost_events", "lost_polling", "corrupted_events", "corrupted_polling"):
            if totals[key]:
                failures.append(f"{totals[key]} {key.replace('_', ' ')}")
        for who, n in self.duplicate_downloads.items():
            if n:
                failures.append(f"{n} duplicate download(s) ({who})")
        eff = self.effects
        if eff is None:
            failures.append("the run's effects were not read back")
        else:
            for key in ("duplicate_transitions", "duplicate_reco_jobs", "duplicate_daq_releases"):
                if eff[key]:
                    failures.append(f"{eff[key]} {key.replace('_', ' ')}")
            if eff["reco_jobs_run"] < 1:
                failures.append("no reconstruction job ran")
        if self.rules_not_ok is None:
            failures.append("the run's rules were not listed")
        elif self.rules_not_ok:
            failures.append(f"{len(self.rules_not_ok)} rule(s) not OK")
        if self.run_state != "RECONSTRUCTED":
            failures.append(f"the run ended {self.run_state}, not RECONSTRUCTED")
        for f in faults:
            if f.get("ready_at") is None:
                failures.append(f"{f['target']} was not back after its fault ({f.get('error')})")
        return {
            "source": chaos.source,
            "faults": faults,
            "effects": eff,
            "duplicate_downloads": self.duplicate_downloads,
            "caught_up": self.caught_up,
            "rules_not_ok": self.rules_not_ok,
            "run_state": self.run_state,
            "failures": failures,
        }

    def _start_loop(self, env: dict[str, str]) -> ListenerLoop:
        from inlet.lake.lake import Lake

        lake = Lake(self.lake_settings)
        managed = "listener" in self.settings.lake.manage and lake.service("listener").proc.is_running()
        loop = ListenerLoop(self.settings, self.out, env, lake_listener=managed)
        loop.start()
        return loop

    def _injector(self, events: Any, loop: ListenerLoop) -> FaultInjector:
        from inlet.lake.lake import Lake

        assert self.plan.chaos is not None
        lake = Lake(self.lake_settings)

        def kill(target: str) -> int | None:
            if target in LAKE_TARGETS:
                return lake.kill(LAKE_TARGETS[target])
            if target == "worker":
                return self.worker.kill() if self.worker is not None else None
            if target == "listener":
                return lake.kill("listener") if loop.lake_listener else loop.listener.kill()
            events.crash()
            return os.getpid()

        def restart(target: str) -> None:
            if target in LAKE_TARGETS or (target == "listener" and loop.lake_listener):
                name = LAKE_TARGETS.get(target, "listener")
                rows = lake.restart(name)
                if not all(r.ok for r in rows):
                    raise RehearsalError(f"{name} did not come back: {[(r.name, r.state) for r in rows]}")
                self._restart_collateral(lake, name)
            elif target == "worker":
                if self.worker is not None:
                    self.worker.start()
            elif target == "listener":
                loop.listener.start()
            else:
                events.restart()

        return FaultInjector(self.plan.chaos, kill, restart)

    def _restart_collateral(self, lake: Any, killed: str) -> None:
        """Start again the lake services that died with ``killed`` (Rucio daemons exit when their
        database goes away, and the lake has no supervisor): noted in the report, never hidden."""
        services = {svc.name for svc in lake.managed()}
        # A daemon that runs as a thread of a group (rucio-daemons) has a status row of its own
        # but is started with its group: restarting the group's row brings every member back.
        dead = [s.name for s in lake.status() if s.state == "dead" and s.name in services]
        for name in dead:
            try:
                lake.restart(name)
                self.notes.append(f"{name} died when {killed} was killed; restarted")
            except Exception as exc:
                self.notes.append(f"{name} died when {killed} was killed and did not restart: {exc}")

    def _retrying(self, what: str, fn: Callable[[], Any], timeout: float = 300.0) -> Any:
        """``fn()``, again while a part the chaos drill killed is coming back."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fn()
            except Exception as exc:
                if self.plan.chaos is None or time.monotonic() > deadline:
                    raise
                log.warning("%s failed (%s); retrying", what, exc)
                time.sleep(1.0)

    def _life_cycle(self, loop: ListenerLoop) -> None:
        """After the run: S3, TAPE, reconstruction; then what it all caused, read back."""
        p = self.plan
        scope, dataset = f"{p.experiment}.raw", f"run{self.run:06d}.raw"
        try:
            self.run_state = loop.to_reconstructed(scope, dataset, p.experiment, self.run, p.drain_timeout * 2)
        except Exception as exc:
            self.notes.append(f"the run's life cycle after site B failed: {type(exc).__name__}: {exc}")
        self.notes += loop.phase_notes
        # The outbox sends the last DAQ releases within a sweep or two.
        time.sleep(2 * self.settings.listener.outbox_interval)
        try:
            self.effects = effects(self.settings, p.experiment, self.run, scope, dataset, loop.reco_jobs_run())
        except Exception as exc:
            self.notes.append(f"the run's effects could not be read back: {type(exc).__name__}: {exc}")
        try:
            reco_scope = RECO_SCOPE
            deadline = time.monotonic() + 120
            while True:
                self.rules_not_ok = self._retrying(
                    "listing the run's rules",
                    lambda: rules_not_ok(scope, f"run{self.run:06d}", [(reco_scope, f"{dataset}_reco")]),
                    60,
                )
                if not self.rules_not_ok or time.monotonic() > deadline:
                    break
                time.sleep(2.0)
        except Exception as exc:
            self.notes.append(f"the run's rules could not be listed: {type(exc).__name__}: {exc}")

    def _generate(self, drill: Any, events: Any, progress: Progress | None) -> None:
        p = self.plan
        source = StrainSource(p.chunk_size, seed=self.run)
        gps0 = gps_now()
        t0 = time.monotonic()
        suffix = self.settings.uploader.sidecar_suffix
        next_progress = 0.0
        # The steady segment leaves out the first tenth of the run (worker, connections and
        # caches warming up) and ends when the run has settled: CPU between the two samples
        # over the files delivered between them.
        warm = p.chunks // 10
        for i in range(p.chunks):
            delay = t0 + i * p.interval - time.monotonic()
            if self.interrupted.wait(max(0.0, delay)):
                self.notes.append(f"interrupted after {i} of {p.chunks} chunks: the report covers those sent")
                break
            if i == warm:
                self.segment = [self.sample()]
                self.segment_listings = [self._listings()]
            gps = gps0 + round(i / p.rate)
            name = chunk_name(self.run, self.plan.stream, gps)
            if i in p.corrupt:
                drill.names.add(name)
            data = source.data(gps)
            chunk = write_chunk(self.daq, i, name, data, self.run, suffix)
            self.timeline.add(ChunkTimes(i, name, chunk.size, chunk.adler32, chunk.closed_at, drill=i in p.corrupt))
            events.ensure_connected()
            if progress is not None and time.monotonic() >= next_progress:
                progress(self.live())
                next_progress = time.monotonic() + 0.5

    def _end_segment_when_events_done(self, force: bool = False) -> None:
        """The segment ends once the event-driven path has delivered (or failed) every chunk sent:
        the files closed in it are then counted whatever the latency, and the polling baseline's
        last, up to one interval later, is not waited for (its cost is measured apart)."""
        if len(self.segment) != 1:
            return
        if force or self.timeline.tally(lambda cs: all(c.event_status is not None for c in cs)):
            self.segment.append(self.sample())
            self.segment_listings.append(self._listings())

    def sample(self) -> usage.Sample:
        """CPU of the lake, the uploader worker, and this process (DAQ, watcher, both downloaders)."""
        extra = {
            "uploader worker": [self.worker.pid] if self.worker is not None and self.worker.pid else [],
            "downloaders": [os.getpid()],
        }
        return usage.sample(self.settings, extra)

    def _listings(self) -> int:
        return int(self._polling.listings) if self._polling is not None else 0

    def _listing_cost(self, polling: Any, listings: int = 2) -> dict[str, float] | None:
        """The polling baseline's own cost: lake CPU per listing of the full run dataset.

        Measured once the run has settled (nothing else moving), so it is not mixed with the
        event-driven flow's, less the lake's idle CPU over as long; the dataset is then at its
        largest, so this is the dearest listing.
        """
        try:
            before = self.sample()
            t0 = time.monotonic()
            for _ in range(listings):
                polling.poll_once()
            wall = time.monotonic() - t0
            after = self.sample()
            # The lake's idle cost (daemons polling their tables) over as long again, taken off.
            time.sleep(wall)
            idle = usage.cpu_spent(after, self.sample())
            spent = usage.cpu_spent(before, after)
        except Exception as exc:
            self.notes.append(f"the polling listing's cost was not measured: {exc}")
            return None
        net = {g: max(0.0, v - idle.get(g, 0.0)) for g, v in spent.items()}
        out = {g: v / listings for g, v in net.items() if v > 0}
        out["total"] = sum(net.values()) / listings
        out["wall"] = wall / listings
        self.idle_rate = {g: v / wall for g, v in idle.items()} if wall > 0 else {}
        return out

    def cpu_report(self, chunks: list[ChunkTimes]) -> dict[str, Any] | None:
        """CPU seconds per process group over the steady segment, per file delivered in it.

        A file counts when its event-driven download finished inside the segment. The polling
        baseline's listings ran meanwhile; their estimated share (listings in the segment x the
        cost of one listing measured after the run) is given apart and is not subtracted.
        """
        if len(self.segment) != 2:
            return None
        start, end = self.segment
        delivered = sum(1 for c in chunks if c.event_done is not None and start.at <= c.event_done <= end.at)
        spent = usage.cpu_spent(start, end)
        seconds = end.at - start.at
        per_file = {g: (v / delivered if delivered else None) for g, v in spent.items()}
        total = sum(spent.values())
        out: dict[str, Any] = {
            "segment_s": seconds,
            "delivered": delivered,
            "files_per_s": delivered / seconds if seconds > 0 else None,
            "cpu_s": spent,
            "cpu_s_per_file": per_file,
            "total_cpu_s": total,
            "total_cpu_s_per_file": total / delivered if delivered else None,
            "cores_busy": total / seconds if seconds > 0 else None,
            "rss_mb": {g: u.rss / 2**20 for g, u in end.groups.items()},
            "total_rss_mb": end.total.rss / 2**20,
            "pss_mb": {g: u.pss / 2**20 for g, u in end.groups.items()},
            "total_pss_mb": end.total.pss / 2**20,
            "load_average": list(os.getloadavg()),
        }
        try:
            from inlet.broker_stats import broker_memory

            # Full (100 %), the broker holds every publisher back: a latency that grows late in a
            # run with no cost of inlet's behind it (issue 14's first full runs).
            out["broker_memory"] = broker_memory(self.settings.broker)
        except (InletError, OSError, ValueError) as exc:
            self.notes.append(f"the broker's memory was not read: {exc}")
        if self.idle_rate and delivered:
            # What a file adds to a lake that runs anyway: the sizing figure (idle is per lake, not per file).
            marginal = {g: max(0.0, v - self.idle_rate.get(g, 0.0) * seconds) / delivered for g, v in spent.items()}
            out["idle_cpu_s_per_s"] = self.idle_rate
            out["marginal_cpu_s_per_file"] = marginal
            out["total_marginal_cpu_s_per_file"] = sum(marginal.values())
        if self.listing_cost is not None:
            listings = self.segment_listings[-1] - self.segment_listings[0] if len(self.segment_listings) == 2 else 0
            out["polling_listing_cpu_s"] = self.listing_cost
            out["polling_listings_in_segment"] = listings
            out["polling_share_cpu_s_per_file"] = (
                listings * self.listing_cost["total"] / delivered if delivered else None
            )
        return out

    def _drain(self, events: Any, progress: Progress | None) -> None:
        deadline = time.monotonic() + self.plan.drain_timeout
        while time.monotonic() < deadline:
            if self.timeline.wait_settled(timeout=0.5):
                break
            self._end_segment_when_events_done()
            events.ensure_connected()
            if progress is not None:
                progress(self.live())
        if progress is not None:
            progress(self.live())

    def live(self) -> dict[str, Any]:
        totals, recent = self.timeline.progress(300)
        out: dict[str, Any] = dict(totals)
        out["e2e_events_median"] = running_median(recent, "closed", "event_done")
        out["e2e_polling_median"] = running_median(recent, "closed", "poll_done")
        out["upload_median"] = running_median(recent, "closed", "registered")
        out["total"] = self.plan.chunks
        return out
