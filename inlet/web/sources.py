"""What each page shows, read from inlet's own sources with inlet's own query functions.

Every reader takes the :class:`~inlet.web.access.Viewer` and leaves out what that viewer may
not see *before* anything is rendered: a template never receives a name it must not show.
A source that is down (Redis, the broker, the listener's metrics, Rucio) becomes a line on the
page saying so, never an error page: the other panels still help the shift worker.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rucio_inlet.catalog_models import FileAvailability, OutboxMessage, Run, RunFile, RunTransition
from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session

from inlet.catalog.listing import list_runs, run_row
from inlet.config import Settings
from inlet.errors import InletError
from inlet.web.access import Viewer
from inlet.web.rucio_rest import RucioRest

log = logging.getLogger(__name__)

#: Alarms (outbox rows of these kinds) the alarms page lists, newest first.
ALARM_KINDS = ("webhook", "webhook-suppressed")
ALARMS_SHOWN = 200
REPORTS_SHOWN = 10
#: Plots a rehearsal report may have; nothing else under the report directory is ever served.
REPORT_PLOTS = ("hops.png", "latency-over-time.png")
_STAMP = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")


def unavailable(what: str, exc: Exception) -> str:
    """One line for a panel whose source is down (InletError's problem, else the exception's type)."""
    detail = exc.problem if isinstance(exc, InletError) else f"{type(exc).__name__}: {exc}"
    return f"{what} unavailable: {' '.join(detail.split())[:300]}"


# -- runs ---------------------------------------------------------------------------------------
def tier_rses(settings: Settings) -> list[str]:
    """The RSEs a run's progress is counted on, in the order data travel (DAQ site, S3, tape)."""
    out: list[str] = []
    for rse in [settings.uploader.first_rse, *settings.listener.s3_rses, *settings.listener.tape_rses]:
        if rse not in out:
            out.append(rse)
    return out


def runs_page(
    session: Session, viewer: Viewer, *, page: int, page_size: int, state: str | None, experiment: str | None
) -> dict[str, Any]:
    """One page of runs, newest first, plus whether another page follows (one row more is read)."""
    rows = list_runs(
        session,
        state,
        None,
        experiment,
        limit=page_size + 1,
        offset=page * page_size,
        newest_first=True,
        public_at=viewer.public_at(),
    )
    return {"rows": rows[:page_size], "has_next": len(rows) > page_size, "page": page}


def run_detail(
    session: Session, viewer: Viewer, experiment: str, run_number: int, settings: Settings, rucio: RucioRest
) -> dict[str, Any] | None:
    """A run's files (with when each reached which RSE), rules, history and reconstruction; None if the
    run does not exist or the viewer may not see it (the same answer: existence is a name too)."""
    run = session.scalars(select(Run).where(Run.experiment == experiment, Run.run_number == run_number)).one_or_none()
    if run is None or not viewer.may_see_run(run.embargo_until):
        return None
    files = session.scalars(select(RunFile).where(RunFile.run_id == run.id).order_by(RunFile.name)).all()
    avail: dict[int, dict[str, str]] = {}
    for file_id, rse, at in session.execute(
        select(FileAvailability.file_id, FileAvailability.rse, FileAvailability.available_at)
        .join(RunFile, RunFile.id == FileAvailability.file_id)
        .where(RunFile.run_id == run.id)
    ):
        avail.setdefault(file_id, {})[rse] = at.isoformat()[:19]
    on: dict[str, int] = {}
    for per in avail.values():
        for rse in per:
            on[rse] = on.get(rse, 0) + 1
    history = session.scalars(
        select(RunTransition).where(RunTransition.run_id == run.id).order_by(RunTransition.id)
    ).all()
    out: dict[str, Any] = {
        "run": run_row(run, on),
        "state_reason": run.state_reason,
        "files": [{"did": f.did, "size": f.size, "adler32": f.adler32, "on": avail.get(f.id, {})} for f in files],
        "history": [
            {"at": t.at.isoformat()[:19], "from": t.from_state, "to": t.to_state, "reason": t.reason or ""}
            for t in history
        ],
        "rules": [],
        "rules_error": None,
        "reco": None,
    }
    if run.scope and run.dataset:
        try:
            out["rules"] = [
                {
                    "id": r.get("id"),
                    "rse_expression": r.get("rse_expression"),
                    "state": r.get("state"),
                    "ok": r.get("locks_ok_cnt"),
                    "replicating": r.get("locks_replicating_cnt"),
                    "stuck": r.get("locks_stuck_cnt"),
                    "error": r.get("error"),
                }
                for r in rucio.did_rules(run.scope, run.dataset)
            ]
        except InletError as exc:
            out["rules_error"] = unavailable("rules", exc)
        reco_scope = settings.listener.reco.scope or f"{run.experiment}.reco"
        reco_ds = f"{run.dataset}_reco"
        if run.state.value == "RECONSTRUCTED":
            try:
                names = [f"{f['scope']}:{f['name']}" for f in rucio.dataset_files(reco_scope, reco_ds)]
                out["reco"] = {"dataset": f"{reco_scope}:{reco_ds}", "files": names}
            except InletError as exc:
                out["reco"] = {"dataset": f"{reco_scope}:{reco_ds}", "files": [], "error": unavailable("outputs", exc)}
    return out


def change_mark(session: Session) -> tuple[int, int, int]:
    """A cheap fingerprint of the catalogue (three primary-key maxima): it moves whenever a run is
    added, changes state or gets a file somewhere."""
    row = session.execute(
        select(
            select(func.max(Run.id)).scalar_subquery(),
            select(func.max(RunTransition.id)).scalar_subquery(),
            select(func.max(FileAvailability.id)).scalar_subquery(),
        )
    ).one()
    return (row[0] or 0, row[1] or 0, row[2] or 0)


# -- uploader -----------------------------------------------------------------------------------
def uploader_page(settings: Settings, viewer: Viewer) -> dict[str, Any]:
    import redis

    from inlet.uploader.pipeline import state_path
    from inlet.uploader.status import quarantined, uploader_status

    out: dict[str, Any] = {"status": None, "error": None, "quarantine": None}
    client = redis.Redis.from_url(settings.redis.url, socket_timeout=5, socket_connect_timeout=5)
    try:
        out["status"] = uploader_status(settings, client)
    except redis.RedisError as exc:
        out["error"] = unavailable("uploader status (Redis)", exc)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    qdir = state_path(settings, settings.uploader.quarantine_dir)
    entries = quarantined(qdir)
    # Quarantined files are DAQ names of runs that may be under embargo: members only.
    out["quarantine"] = entries if viewer.sees_embargoed else None
    out["quarantine_count"] = len(entries)
    return out


# -- listener -----------------------------------------------------------------------------------
@dataclass
class RateMeter:
    """Events per second between two looks at a counter (the listener's events total)."""

    last: tuple[float, float] | None = None
    rate: float | None = None

    def update(self, total: float, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        if self.last is not None and now - self.last[0] >= 1.0 and total >= self.last[1]:
            self.rate = (total - self.last[1]) / (now - self.last[0])
        if self.last is None or now - self.last[0] >= 1.0:
            self.last = (now, total)
        return self.rate


@dataclass
class ListenerMetrics:
    events_total: float = 0.0
    by_outcome: dict[str, float] = field(default_factory=dict)
    lag_mean: float | None = None
    lag_count: float = 0.0
    dead_lettered: float = 0.0


def parse_listener_metrics(text: str) -> ListenerMetrics:
    from prometheus_client.parser import text_string_to_metric_families

    m = ListenerMetrics()
    lag_sum = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "inlet_listener_events_total":
                m.events_total += s.value
                outcome = s.labels.get("outcome", "?")
                m.by_outcome[outcome] = m.by_outcome.get(outcome, 0.0) + s.value
            elif s.name == "inlet_listener_lag_seconds_sum":
                lag_sum = s.value
            elif s.name == "inlet_listener_lag_seconds_count":
                m.lag_count = s.value
            elif s.name == "inlet_listener_dead_lettered_total":
                m.dead_lettered += s.value
    m.lag_mean = lag_sum / m.lag_count if m.lag_count else None
    return m


def listener_page(settings: Settings, viewer: Viewer, meter: RateMeter) -> dict[str, Any]:
    from inlet.config import metrics_url
    from inlet.listener.dlq import DeadLetterQueue

    out: dict[str, Any] = {"metrics": None, "metrics_error": None, "rate": None, "dlq": None, "dlq_error": None}
    ls = settings.listener
    if not ls.metrics_port:
        out["metrics_error"] = "listener metrics are off: set [listener] metrics_port"
    else:
        try:
            res = requests.get(metrics_url(ls.metrics_host, ls.metrics_port), timeout=5)
            res.raise_for_status()
            out["metrics"] = parse_listener_metrics(res.text)
            out["rate"] = meter.update(out["metrics"].events_total)
        except (requests.RequestException, ValueError) as exc:
            out["metrics_error"] = unavailable("listener metrics", exc)
    from inlet.broker_stats import queue_depths

    try:
        out["queues"] = queue_depths(settings.broker)
    except (InletError, OSError) as exc:
        out["queues_error"] = unavailable("broker queue depths", exc)
    try:
        letters = DeadLetterQueue(settings.broker, ls, timeout=5.0).letters()
    except InletError as exc:
        out["dlq_error"] = unavailable("dead-letter queue", exc)
    else:
        out["dlq_size"] = len(letters)
        # Bodies and reasons carry DID names: members only.
        if viewer.sees_embargoed:
            out["dlq"] = [
                {
                    "id": lt.dlq_id,
                    "at": lt.at,
                    "event_type": lt.event_type,
                    "handler": lt.handler,
                    "reason": lt.reason[:500],
                    "source": lt.source,
                    "body": lt.body[:2000].decode("utf-8", errors="replace"),
                }
                for lt in letters
            ]
    return out


# -- alarms -------------------------------------------------------------------------------------
def alarms_page(session: Session, viewer: Viewer) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind.in_(ALARM_KINDS)))
    out: dict[str, Any] = {"total": int(total or 0), "alarms": None}
    if viewer.sees_embargoed:  # alarm texts name files and runs: members only
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind.in_(ALARM_KINDS))
            .order_by(desc(OutboxMessage.id))
            .limit(ALARMS_SHOWN)
        ).all()
        out["alarms"] = [
            {
                "at": m.created_at.isoformat()[:19],
                "text": str((m.payload or {}).get("text", "")),
                "sent": m.sent_at.isoformat()[:19] if m.sent_at else None,
                "suppressed": m.kind == "webhook-suppressed",
                "error": m.last_error,
            }
            for m in rows
        ]
    return out


# -- rehearsals ---------------------------------------------------------------------------------
def report_root(settings: Settings) -> Path:
    return settings.rehearse.report_dir.absolute()


def rehearsals_page(settings: Settings) -> dict[str, Any]:
    root = report_root(settings)
    reports: list[dict[str, Any]] = []
    try:
        dirs = sorted((d for d in root.iterdir() if d.is_dir() and (d / "report.json").is_file()), reverse=True)
    except OSError:
        dirs = []
    for d in dirs[:REPORTS_SHOWN]:
        try:
            doc = json.loads((d / "report.json").read_text())
        except (OSError, ValueError) as exc:
            reports.append({"stamp": d.name, "error": f"unreadable report.json: {exc}"})
            continue
        reports.append(
            {
                "stamp": d.name,
                "meta": doc.get("meta", {}),
                "counts": doc.get("counts", {}),
                "comparison": doc.get("comparison", {}),
                "hops": doc.get("hops", []),
                "plots": [p for p in REPORT_PLOTS if (d / p).is_file()],
            }
        )
    return {"root": str(root), "reports": reports}


def report_plot(settings: Settings, stamp: str, plot: str) -> Path | None:
    """The plot file of a report, if both names are ones this page itself links to."""
    if plot not in REPORT_PLOTS or not _STAMP.match(stamp):
        return None
    path = report_root(settings) / stamp / plot
    return path if path.is_file() else None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()[:19]
