"""The rehearsal's report: counts, per-hop latency statistics, PNG plots, Markdown and JSON.

``report.json`` keeps every chunk's timestamps for later analysis; ``report.md`` embeds
``hops.png`` (a histogram per hop) and ``latency-over-time.png`` (end to end, per chunk, for
both downloaders), and says which daemon sleep the latency is mostly spent in.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inlet.rehearse.timeline import HOPS, ChunkTimes

#: The slides of the 2019 rehearsal: what inlet is compared with.
EGO_UPLOAD_MEAN = 1.9
EGO_END_TO_END_MEDIAN = 8.2

#: Hops that are mostly a daemon's sleep, and the setting that sets it.
SLEEPS = {
    "rule→request": ("judge-evaluator (dataset rules) or the uploader's rule call", "[lake] flow_sleep"),
    "submit": ("conveyor submitter", "[transfers] submitter_sleep"),
    "poll": ("conveyor poller", "[transfers] poller_sleep"),
    "event delivery": ("hermes", "[lake] flow_sleep"),
}


@dataclass(frozen=True)
class HopStats:
    hop: str
    covers: str
    n: int
    mean: float
    median: float
    p90: float
    p99: float
    max: float


def hop_values(chunks: list[ChunkTimes], start: str, end: str) -> list[float]:
    return [v for c in chunks if (v := c.hop(start, end)) is not None]


def hop_stats(chunks: list[ChunkTimes]) -> list[HopStats]:
    out = []
    for hop, start, end, covers in HOPS:
        v = np.array(hop_values(chunks, start, end))
        if v.size == 0:
            out.append(HopStats(hop, covers, 0, *([float("nan")] * 5)))
            continue
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        out.append(
            HopStats(hop, covers, int(v.size), float(v.mean()), float(p50), float(p90), float(p99), float(v.max()))
        )
    return out


def registered_within(chunks: list[ChunkTimes], seconds: float) -> float | None:
    """Fraction of the chunks sent that were registered within ``seconds`` of being closed."""
    if not chunks:
        return None
    return sum(1 for c in chunks if (v := c.hop("closed", "registered")) is not None and v <= seconds) / len(chunks)


def cpu_table(cpu: dict[str, Any]) -> list[str]:
    """Markdown rows: CPU seconds and milliseconds per delivered file, per process group."""
    per_file = cpu["cpu_s_per_file"]
    marginal = cpu.get("marginal_cpu_s_per_file")
    extra = (" above idle, ms per file |", "---|") if marginal else ("", "")
    rows = [
        "| process group | CPU s in segment | CPU ms per file | RSS MiB at end | PSS MiB at end |" + extra[0],
        "|---|---|---|---|---|" + extra[1],
    ]
    pss = cpu.get("pss_mb") or {}
    for g, v in sorted(cpu["cpu_s"].items(), key=lambda kv: -kv[1]):
        ms = per_file.get(g)
        row = (
            f"| {g} | {v:.1f} | {'-' if ms is None else f'{1000 * ms:.1f}'} | {cpu['rss_mb'].get(g, 0.0):.0f} "
            f"| {pss.get(g, 0.0):.0f} |"
        )
        if marginal:
            row += f" {1000 * marginal.get(g, 0.0):.1f} |"
        rows.append(row)
    tot = cpu["total_cpu_s_per_file"]
    row = (
        f"| **total** | {cpu['total_cpu_s']:.1f} | **{'-' if tot is None else f'{1000 * tot:.1f}'}** "
        f"| {cpu['total_rss_mb']:.0f} | {cpu.get('total_pss_mb', 0.0):.0f} |"
    )
    if marginal:
        row += f" **{1000 * cpu['total_marginal_cpu_s_per_file']:.1f}** |"
    rows.append(row)
    return rows


def dominant_sleep(stats: list[HopStats]) -> tuple[str, str, float] | None:
    """The event-driven hop that is mostly a daemon's sleep and costs the most on average."""
    waits = [(s.hop, s.mean) for s in stats if s.hop in SLEEPS and s.n]
    if not waits:
        return None
    hop, mean = max(waits, key=lambda w: w[1])
    return SLEEPS[hop][0], SLEEPS[hop][1], mean


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"  # NaN: no value


def plot_hops(chunks: list[ChunkTimes], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hops = [h for h in HOPS if hop_values(chunks, h[1], h[2])]
    cols = 3
    rows = max(1, -(-len(hops) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (hop, start, end, _) in zip(axes.flat, hops, strict=False):
        v = hop_values(chunks, start, end)
        ax.hist(v, bins=min(40, max(5, len(v) // 3)), color="tab:orange" if "polling" in hop else "tab:blue")
        ax.axvline(float(np.median(v)), color="k", linestyle="--", linewidth=1)
        ax.set_title(f"{hop}\nmedian {np.median(v):.3f} s, n={len(v)}", fontsize=9)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(hops) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_over_time(chunks: list[ChunkTimes], path: Path, faults: list[dict[str, Any]] | None = None) -> None:
    """End-to-end latency per chunk over the run; with ``faults``, each drawn where it happened
    (shaded from the kill to the part answering again, a dotted line when its backlog drained)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    t0 = min((c.closed for c in chunks), default=0.0)
    for label, start, end, color in (
        ("upload", "closed", "registered", "tab:green"),
        ("end to end, events", "closed", "event_done", "tab:blue"),
        ("end to end, polling", "closed", "poll_done", "tab:orange"),
    ):
        pts = [(c.closed - t0, v) for c in chunks if (v := c.hop(start, end)) is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, ".", markersize=3, label=label, color=color)
    for i, f in enumerate(faults or []):
        if f.get("killed_at") is None:
            continue
        start = f["killed_at"] - t0
        back = (f.get("ready_at") or f.get("restarted_at") or f["killed_at"]) - t0
        ax.axvspan(start, back, color="tab:red", alpha=0.18, linewidth=0)
        if f.get("drained_s") is not None:
            ax.axvline(back + f["drained_s"], color="tab:red", linestyle=":", linewidth=0.8)
        ax.annotate(
            f["target"],
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(1, -10 - 9 * (i % 4)),
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
        )
    ax.set_xlabel("seconds since the first chunk was closed")
    ax.set_ylabel("latency (s)")
    ax.set_yscale("log")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build(chunks: list[ChunkTimes], meta: dict[str, Any], totals: dict[str, int]) -> dict[str, Any]:
    stats = hop_stats(chunks)
    dom = dominant_sleep(stats)
    by_hop = {s.hop: s for s in stats}
    ev, po = by_hop["end to end (events)"], by_hop["end to end (polling)"]
    return {
        "meta": meta,
        "counts": totals,
        "hops": [asdict(s) for s in stats],
        "comparison": {
            "upload_mean_s": by_hop["upload"].mean,
            "ego_upload_mean_s": EGO_UPLOAD_MEAN,
            "end_to_end_events_median_s": ev.median,
            "end_to_end_polling_median_s": po.median,
            "ego_end_to_end_median_s": EGO_END_TO_END_MEDIAN,
            "polling_over_events_median": po.median / ev.median if ev.n and po.n and ev.median > 0 else None,
            "registered_within_5s": registered_within(chunks, 5.0),
        },
        "dominant_sleep": {"daemon": dom[0], "setting": dom[1], "mean_s": dom[2]} if dom else None,
        "chunks": [asdict(c) for c in chunks],
    }


def markdown(doc: dict[str, Any]) -> str:
    m, c, cmp = doc["meta"], doc["counts"], doc["comparison"]
    lines = [
        "# inlet dress rehearsal",
        "",
        f"Run {m['run']} of experiment {m['experiment']}: {m['chunks']} chunks of {m['chunk_size']} B, "
        f"{m['rate']} per data second played {m['speedup']}x faster, uploaded to {m['first_rse']} and replicated "
        f"to {', '.join(m['targets'])}; both downloaders fetch from {m['download_rse']}. "
        f"Started {m['started']}, took {m['wall_seconds']:.1f} s.",
        "",
        "## Counts",
        "",
        "| sent | uploaded | replicated | downloaded (events) | downloaded (polling) | corrupted (events/polling) "
        "| lost (events/polling) | drilled |",
        "|---|---|---|---|---|---|---|---|",
        f"| {c['sent']} | {c['uploaded']} | {c['replicated']} | {c['downloaded_events']} | {c['downloaded_polling']} "
        f"| {c['corrupted_events']}/{c['corrupted_polling']} | {c['lost_events']}/{c['lost_polling']} "
        f"| {c['drilled']} |",
        "",
        "## Against the 2019 EGO/Virgo rehearsal",
        "",
        f"- Upload latency mean: **{_fmt(cmp['upload_mean_s'])} s** (EGO: {EGO_UPLOAD_MEAN} s).",
        f"- End-to-end median, event-driven: **{_fmt(cmp['end_to_end_events_median_s'])} s**; polling every "
        f"{m['poll_interval']} s: {_fmt(cmp['end_to_end_polling_median_s'])} s (EGO: {EGO_END_TO_END_MEDIAN} s).",
    ]
    if cmp["polling_over_events_median"]:
        lines.append(f"- Polling / event-driven median: **{cmp['polling_over_events_median']:.1f}x**.")
    if cmp.get("registered_within_5s") is not None:
        lines.append(
            f"- Registered within 5 s of closing: **{100 * cmp['registered_within_5s']:.2f} %** of the chunks sent."
        )
    if doc["dominant_sleep"]:
        d = doc["dominant_sleep"]
        lines.append(
            f"- The event-driven path spends the most in the {d['daemon']}'s sleep ({d['mean_s']:.3f} s on average; "
            f"set by {d['setting']})."
        )
    lines += [
        "",
        "## Latency per hop (seconds)",
        "",
        "| hop | what | n | mean | median | p90 | p99 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for h in doc["hops"]:
        lines.append(
            f"| {h['hop']} | {h['covers']} | {h['n']} | {_fmt(h['mean'])} | {_fmt(h['median'])} | {_fmt(h['p90'])} "
            f"| {_fmt(h['p99'])} | {_fmt(h['max'])} |"
        )
    cpu = m.get("cpu")
    if cpu:
        lines += [
            "",
            "## Lake CPU per delivered file",
            "",
            f"Steady segment of {cpu['segment_s']:.0f} s (the run without its first tenth): {cpu['delivered']} files "
            f"delivered end to end ({cpu['files_per_s'] or 0:.2f} files/s); the lake, the uploader worker and this "
            f"process (DAQ, watcher, both downloaders) kept {cpu['cores_busy'] or 0:.2f} cores busy. Load average "
            f"at the end: {', '.join(f'{x:.1f}' for x in cpu['load_average'])}.",
            "",
            *cpu_table(cpu),
        ]
        if cpu.get("polling_listing_cpu_s"):
            lc = cpu["polling_listing_cpu_s"]
            share = cpu.get("polling_share_cpu_s_per_file")
            lines += [
                "",
                f"The polling baseline (not subtracted above): one listing of the whole run dataset costs "
                f"{1000 * lc['total']:.0f} ms of CPU ({lc['wall']:.2f} s wall) at the end of the run; its "
                f"{cpu.get('polling_listings_in_segment', 0)} listings in the segment come to at most "
                + ("-" if share is None else f"{1000 * share:.1f}")
                + " ms per delivered file.",
            ]
    if m.get("chaos"):
        lines += chaos_section(m["chaos"])
    lines += ["", "![latency per hop](hops.png)", "", "![latency over time](latency-over-time.png)", ""]
    problems = [ch for ch in doc["chunks"] if ch["event_status"] != "downloaded" or ch["poll_status"] != "downloaded"]
    if problems:
        lines += ["## Chunks not downloaded cleanly", "", "| chunk | events | polling | why |", "|---|---|---|---|"]
        for ch in problems[:200]:
            why = "; ".join(x for x in (ch["event_error"], ch["poll_error"]) if x) or "never reached site B"
            lines.append(f"| {ch['name']} | {ch['event_status'] or 'lost'} | {ch['poll_status'] or 'lost'} | {why} |")
        lines.append("")
    if m.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in m["notes"]], ""]
    return "\n".join(lines)


def _s(x: Any) -> str:
    return "-" if x is None else f"{x:.1f}"


def _real(x: Any) -> str:
    return "" if x is None else f" ({x:.1f})"


def chaos_section(ch: dict[str, Any]) -> list[str]:
    """Markdown: the pass condition of a chaos run, then each fault and how the flow healed."""
    verdict = ch.get("failures") or []
    eff = ch.get("effects") or {}
    dup = ch.get("duplicate_downloads") or {}
    lines = [
        "",
        f"## Chaos ({ch.get('source', '')})",
        "",
        ("**Passed**: " if not verdict else "**Failed**: " + "; ".join(verdict) + ". Checked: ")
        + f"0 lost and 0 corrupted for both downloaders; duplicate downloads {dup.get('events', '-')} (events) / "
        f"{dup.get('polling', '-')} (polling); duplicate effects: {eff.get('duplicate_transitions', '-')} "
        f"catalogue transitions, {eff.get('duplicate_reco_jobs', '-')} reconstruction jobs, "
        f"{eff.get('duplicate_daq_releases', '-')} DAQ releases; rules not OK: "
        f"{len(ch['rules_not_ok']) if ch.get('rules_not_ok') is not None else '-'}; run ended {ch.get('run_state')}.",
        "",
        f"Read back from the catalogue: transitions {' · '.join(eff.get('transitions', []))}; "
        f"{eff.get('reco_jobs_run', '-')} reconstruction job(s) run (outbox {eff.get('reco_outbox', '-')}, "
        f"ledger {eff.get('reco_ledger', '-')}); {eff.get('daq_releases', '-')} DAQ releases in the outbox. "
        f"The event downloader caught up {ch.get('caught_up', 0)} chunk(s) by listing site B after a reconnect.",
        "",
        "Times in seconds: *at* after the first chunk, planned (and real: the faults play one after the "
        "other); *down* from the kill to the part answering again; "
        "*first* from then to the first chunk delivered (events); *drained* from then to the last chunk "
        "of its backlog delivered; the latency cost is over the chunks closed from the kill until drained, "
        "against the median of the chunks no fault touched.",
        "",
        "| fault | at | pause | down | first delivery | backlog | drained | chunks hit | median e2e "
        "| calm median | extra latency (sum) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in ch.get("faults", []):
        lines.append(
            f"| {f['target']} | {f['at']:.1f}{_real(f.get('killed_s'))} | {f['pause']:.1f} | {_s(f.get('down_s'))} "
            f"| {_s(f.get('first_delivery_s'))} | {f.get('backlog', '-')} | {_s(f.get('drained_s'))} "
            f"| {f.get('chunks_hit', '-')} | {_s(f.get('median_e2e_s'))} | {_s(f.get('baseline_e2e_s'))} "
            f"| {_s(f.get('extra_latency_s'))} |"
        )
    errors = [f"{f['target']}: {f['error']}" for f in ch.get("faults", []) if f.get("error")]
    if errors:
        lines += ["", "Fault errors: " + "; ".join(errors)]
    if ch.get("rules_not_ok"):
        lines += ["", "Rules not OK: " + "; ".join(ch["rules_not_ok"][:20])]
    return lines


def write(out: Path, chunks: list[ChunkTimes], meta: dict[str, Any], totals: dict[str, int]) -> dict[str, Any]:
    doc = build(chunks, meta, totals)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_clean(doc), indent=1, default=_json_default, allow_nan=False) + "\n")
    plot_hops(chunks, out / "hops.png")
    chaos = meta.get("chaos") or {}
    plot_over_time(chunks, out / "latency-over-time.png", chaos.get("faults"))
    (out / "report.md").write_text(markdown(doc))
    return doc


def _clean(value: Any) -> Any:
    """NaN (a hop no chunk reached) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


__all__ = ["HopStats", "build", "cpu_table", "dominant_sleep", "hop_stats", "markdown", "registered_within", "write"]
