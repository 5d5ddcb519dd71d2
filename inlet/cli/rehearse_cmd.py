"""``inlet rehearse``: the EGO/Virgo data-lake dress rehearsal on this lake, with a report."""

from __future__ import annotations

import datetime as dt
import json
import math
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

console = Console(stderr=True)


def _sec(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.2f} s"  # x != x: NaN, a hop no chunk reached


def _live_table(s: dict[str, Any]) -> Table:
    t = Table(title="dress rehearsal", title_justify="left", show_edge=False)
    for col in ("sent", "uploaded", "at site B", "↓ events", "↓ polling", "corrupted", "e2e median ev/poll"):
        t.add_column(col, justify="right")

    t.add_row(
        f"{s['sent']}/{s['total']}",
        str(s["uploaded"]),
        str(s["replicated"]),
        str(s["downloaded_events"]),
        str(s["downloaded_polling"]),
        f"{s['corrupted_events']}/{s['corrupted_polling']}",
        f"{_sec(s['e2e_events_median'])} / {_sec(s['e2e_polling_median'])}",
    )
    return t


def rehearse(
    duration: Annotated[
        float, typer.Option("--duration", min=1, help="Seconds of detector data to replay (chunks = duration x rate).")
    ] = 120,
    rate: Annotated[float, typer.Option("--rate", min=0.001, help="Chunks per second of data (EGO: 1).")] = 1.0,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=256, help="Bytes per chunk (EGO: 85 kB, 1 s of 4 kHz h(t)).")
    ] = 85_000,
    speedup: Annotated[
        float, typer.Option("--speedup", min=0.001, help="Play the data this many times faster than real time.")
    ] = 1.0,
    rse: Annotated[
        str | None,
        typer.Option("--rse", help="Site B, where both downloaders fetch (default \\[rehearse] download_rse)."),
    ] = None,
    also: Annotated[
        list[str] | None,
        typer.Option("--also", help="Also replicate to this RSE (repeat: --also S3 --also TAPE)."),
    ] = None,
    poll_interval: Annotated[
        float | None, typer.Option("--poll-interval", min=0.1, help="Polling downloader's period (s).")
    ] = None,
    corrupt: Annotated[
        list[int] | None,
        typer.Option("--corrupt", help="Fault drill: corrupt chunk N's replica at site B as it lands (repeat)."),
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Where the report directory is made (default \\[rehearse]).")
    ] = None,
    run: Annotated[int | None, typer.Option("--run", help="Run number (default: derived from the clock).")] = None,
    drain_timeout: Annotated[
        float | None, typer.Option("--drain-timeout", help="Seconds to wait for stragglers after the last chunk.")
    ] = None,
    keep_downloads: Annotated[bool, typer.Option("--keep-downloads", help="Keep the downloaded chunks.")] = False,
    grouping: Annotated[
        str,
        typer.Option(
            "--dataset-grouping",
            help="Grouping of the run dataset's rule to site A: auto, DATASET or NONE (benchmarks compare them).",
        ),
    ] = "auto",
    end_run: Annotated[
        bool,
        typer.Option(
            "--end-run/--keep-run-open",
            help="Close the run dataset at the end (keep it open to go on with the same --run: benchmarks).",
        ),
    ] = True,
    lake: Annotated[
        bool, typer.Option("--lake/--no-lake", help="Start the embedded local lake if it is not running.")
    ] = True,
    chaos: Annotated[
        str | None,
        typer.Option(
            "--chaos",
            metavar="PLAN",
            help="Kill -9 and restart the flow's parts while it runs: PLAN is a seed (every part once, at random) "
            "or a TOML/JSON file of [[fault]] target/at/pause. The run then goes on to RECONSTRUCTED.",
        ),
    ] = None,
) -> None:
    """Replay EGO/Virgo's 2019 data-lake dress rehearsal: DAQ → uploader → site A → site B → downloaders.

    A synthetic DAQ writes 1-second strain chunks; inlet's uploader ingests them; rules
    replicate them to site B, where an event-driven downloader (Rucio transfer-done + inlet
    file-registered events) and a polling downloader (the 2019 approach) fetch and verify each
    chunk. The report (Markdown with plots, JSON with every chunk's timestamps) gives counts and
    the latency of every hop, against the 2019 figures (upload mean 1.9 s, end to end 8.2 s).

    Examples: `inlet rehearse` (2 minutes at 1 Hz); `inlet rehearse --duration 14400 --speedup 10`
    (the full 4 h at 10x); `inlet rehearse --duration 30 --speedup 5 --corrupt 7` (a drill);
    `inlet rehearse --duration 60 --chaos 7` (every part of the flow killed once, at random).
    Exit status: 0 when nothing was lost or corrupted (apart from drilled chunks), 1 otherwise;
    with --chaos, also no duplicate download or effect, every rule OK and the run RECONSTRUCTED.
    """
    from inlet.cli.failures import mask
    from inlet.config import load_settings
    from inlet.errors import InletError
    from inlet.lake.lake import Lake
    from inlet.rehearse import report
    from inlet.rehearse.chaos import ChaosPlan
    from inlet.rehearse.runner import Rehearsal, RehearsalPlan, counts

    numbers = {
        "--duration": duration,
        "--rate": rate,
        "--speedup": speedup,
        "--poll-interval": poll_interval,
        "--drain-timeout": drain_timeout,
        "--duration x --rate": duration * rate,
    }
    for option, value in numbers.items():
        if value is not None and not math.isfinite(value):
            raise InletError(f"{option} is {value}", "give a finite number of seconds (or chunks per second)")
    settings = load_settings()
    cfg = settings.rehearse
    plan = RehearsalPlan(
        chunks=math.floor(duration * rate),
        rate=rate,
        chunk_size=chunk_size,
        speedup=speedup,
        download_rse=rse or cfg.download_rse,
        extra_rses=list(also) if also else list(cfg.extra_rses),
        poll_interval=poll_interval or cfg.poll_interval,
        download_workers=cfg.download_workers,
        drain_timeout=drain_timeout or cfg.drain_timeout,
        experiment=cfg.experiment,
        stream=cfg.stream,
        run=run,
        corrupt=list(corrupt or []),
        keep_downloads=keep_downloads,
        grouping=grouping,
        end_run=end_run,
    )
    if chaos is not None:
        # A ChaosError (bad plan) goes to the CLI's one handler.
        plan.chaos = ChaosPlan.load(chaos, plan.chunks / (plan.rate * plan.speedup))
    try:
        plan.check()
    except ValueError as err:
        raise InletError(str(err), "see `inlet rehearse -h`") from err
    if lake:
        # A LakeError goes to the CLI's one handler.
        rows = Lake(settings).up(lambda n, m: console.print(f"  {n}: {m}", highlight=False))
        if not all(r.ok for r in rows):
            raise InletError("the lake is not healthy", "see `inlet lake status`")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (report_dir or cfg.report_dir).absolute() / stamp
    rehearsal = Rehearsal(settings, plan, out)
    console.print(
        f"rehearsing run {rehearsal.run}: {plan.chunks} chunks of {plan.chunk_size} B, one every "
        f"{plan.interval:.3f} s, site B = {plan.download_rse}; report in {out}"
    )

    def stop(signum: int, frame: Any) -> None:
        # First Ctrl-C: stop the DAQ, let what was sent settle, write the report. Second: abort.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        console.print("stopping: no more chunks; waiting for those sent, then writing the report (Ctrl-C again aborts)")
        rehearsal.interrupt()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            chunks = rehearsal.execute(progress=lambda s: live.update(_live_table(s)))
    except (ConnectionError, OSError) as err:
        b = settings.broker
        redis = mask(settings.redis.url)
        raise InletError(
            f"{type(err).__name__}: {err}",
            f"is the lake up (`inlet lake status`)? The broker is {b.host}:{b.stomp_port}, Redis {redis}",
        ) from err
    totals = counts(chunks)
    first = settings.uploader.first_rse
    chaos_report = rehearsal.chaos_report(chunks, totals)
    meta: dict[str, Any] = {
        "run": rehearsal.run,
        "experiment": plan.experiment,
        "chunks": len(chunks),
        "chunk_size": plan.chunk_size,
        "rate": plan.rate,
        "speedup": plan.speedup,
        "first_rse": first,
        "download_rse": plan.download_rse,
        "targets": [plan.download_rse, *plan.extra_rses],
        "poll_interval": plan.poll_interval,
        "started": dt.datetime.fromtimestamp(rehearsal.started_at, dt.UTC).isoformat(),
        "wall_seconds": rehearsal.finished_at - rehearsal.started_at,
        "run_state": rehearsal.run_state,
        "daemon_sleep": settings.lake.daemon_sleep,
        "notes": rehearsal.notes,
        "cpu": rehearsal.cpu_report(chunks),
        "chaos": chaos_report,
        "conveyor_sleeps": [
            settings.transfers.submitter_sleep,
            settings.transfers.poller_sleep,
            settings.transfers.finisher_sleep,
        ],
    }
    doc = report.write(out, chunks, meta, totals)
    _summary(doc, out)
    drilled_ok = all(c.event_status == "corrupted" and c.poll_status == "corrupted" for c in chunks if c.drill)
    unexpected = totals["corrupted_events"] + totals["corrupted_polling"] - 2 * totals["drilled"]
    failed = totals["lost_events"] or totals["lost_polling"] or unexpected or not drilled_ok
    if chaos_report is not None and chaos_report["failures"]:
        console.print("chaos rehearsal FAILED: " + "; ".join(chaos_report["failures"]), highlight=False)
        failed = True
    if failed or rehearsal.interrupted.is_set():
        raise typer.Exit(1)


def _summary(doc: dict[str, Any], out: Path) -> None:
    c, cmp = doc["counts"], doc["comparison"]
    t = Table(title="inlet dress rehearsal", title_justify="left")
    t.add_column("hop")
    for col in ("n", "mean", "median", "p90", "p99", "max"):
        t.add_column(col, justify="right")
    for h in doc["hops"]:
        if h["n"]:
            t.add_row(h["hop"], str(h["n"]), *(f"{h[k]:.3f}" for k in ("mean", "median", "p90", "p99", "max")))
    console.print(t)
    console.print(
        f"sent {c['sent']}, uploaded {c['uploaded']}, replicated {c['replicated']}, downloaded "
        f"{c['downloaded_events']} (events) / {c['downloaded_polling']} (polling), corrupted "
        f"{c['corrupted_events']}/{c['corrupted_polling']} (drilled {c['drilled']}), lost "
        f"{c['lost_events']}/{c['lost_polling']}"
    )
    ratio = cmp["polling_over_events_median"]
    console.print(
        f"upload mean {_sec(cmp['upload_mean_s'])} (EGO 1.9 s); end-to-end median "
        f"{_sec(cmp['end_to_end_events_median_s'])} with events, "
        f"{_sec(cmp['end_to_end_polling_median_s'])} polling (EGO 8.2 s)"
        + (f"; polling/events {ratio:.1f}x" if ratio else "")
    )
    console.print(f"report: {out / 'report.md'}")
    line: dict[str, Any] = {"report": str(out), **c}
    ch = doc["meta"].get("chaos")
    if ch:
        for f in ch["faults"]:
            console.print(
                f"fault {f['target']} at {f['at']:.0f} s: down {_sec(f.get('down_s'))}, first delivery "
                f"{_sec(f.get('first_delivery_s'))} after, backlog of {f.get('backlog', '-')} drained "
                f"{_sec(f.get('drained_s'))} after",
                highlight=False,
            )
        line["chaos_failures"] = ch["failures"]
    typer.echo(json.dumps(line))
