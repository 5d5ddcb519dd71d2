"""docker/monitoring/: the Grafana dashboard and the alert rules ask for metrics inlet really
exports, and every PromQL expression passes a structural check (no promtool here).

A metric "exists" if its base name (without _total/_bucket/_sum/_count) is declared as a string
in inlet's code, where prometheus_client metrics and collectors are defined. Rucio's and
Prometheus' own series are only ``up``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MON = ROOT / "docker" / "monitoring"
INLET_SOURCE = "\n".join(p.read_text() for p in (ROOT / "inlet").rglob("*.py"))

FUNCTIONS = {
    "abs",
    "absent",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "ln",
    "max_over_time",
    "min_over_time",
    "predict_linear",
    "rate",
    "resets",
    "round",
    "scalar",
    "sort",
    "sort_desc",
    "sum_over_time",
    "time",
    "timestamp",
    "vector",
    "last_over_time",
    "quantile_over_time",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
BUILTIN_SERIES = {"up"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def check_promql(expr: str) -> set[str]:
    """The metric names EXPR reads; AssertionError if it is not well formed."""
    assert expr.strip(), "empty expression"
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings cannot confuse the checks below
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            assert stack and stack[-1] == pairs[ch], f"unbalanced {ch!r} in {expr!r}"
            stack.pop()
    assert not stack, f"unclosed {stack[-1]!r} in {expr!r}"
    for rng in re.findall(r"\[([^\]]*)\]", text):
        assert re.fullmatch(r"\d+[smhdwy](:\d+[smhdwy])?", rng.strip()), f"bad range [{rng}] in {expr!r}"
    for matchers in re.findall(r"\{([^}]*)\}", text):
        for m in filter(None, (x.strip() for x in matchers.split(","))):
            assert re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*""', m), f"bad matcher {m!r} in {expr!r}"
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", bare)
    names: set[str] = set()
    for m in _IDENT.finditer(bare):
        word = m.group(0)
        after = bare[m.end() :].lstrip()
        if word in KEYWORDS or re.fullmatch(r"\d.*", word):
            continue
        if after.startswith("("):
            assert word in FUNCTIONS | AGGREGATIONS, f"unknown function {word!r} in {expr!r}"
            continue
        if m.start() > 0 and (bare[m.start() - 1].isdigit() or bare[m.start() - 1] == "."):
            continue  # the exponent of a number such as 1e-9
        if word in AGGREGATIONS:
            continue  # sum by (x) (...): the aggregation before its clause
        names.add(word)
    return names


def base_name(metric: str) -> str:
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def assert_exported(names: set[str], where: str) -> None:
    for name in names:
        if name in BUILTIN_SERIES:
            continue
        assert name.startswith("inlet_"), f"{where}: {name} is not one of inlet's metrics"
        assert f'"{base_name(name)}"' in INLET_SOURCE, f"{where}: no metric {base_name(name)!r} in inlet's code"


def dashboard_exprs() -> list[tuple[str, str]]:
    doc = json.loads((MON / "grafana" / "dashboards" / "inlet.json").read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]


def alert_rules() -> list[dict[str, object]]:
    doc = yaml.safe_load((MON / "alerts.yml").read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("groups"), list) and doc["groups"]
    rules = []
    for group in doc["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group
        rules.extend(group["rules"])
    return rules


@pytest.mark.parametrize(("title", "expr"), dashboard_exprs())
def test_dashboard_queries_read_metrics_inlet_exports(title: str, expr: str) -> None:
    assert_exported(check_promql(expr), f"panel {title!r}")


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    exprs = " ".join(e for _, e in dashboard_exprs())
    for metric in (
        "inlet_uploader_files_total",
        "inlet_uploader_latency_seconds_bucket",
        "inlet_catalog_files_available",
        "inlet_listener_lag_seconds_sum",
        "inlet_listener_dlq_size",
        "inlet_listener_alarms_total",
        "inlet_broker_queue_size",
    ):
        assert metric in exprs, metric


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r.get("alert")))
def test_alert_rules_parse_and_read_exported_metrics(rule: dict[str, object]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", str(rule["alert"]))
    labels, annotations = rule["labels"], rule["annotations"]
    assert isinstance(labels, dict) and labels.get("severity") in ("info", "warning", "critical")
    assert isinstance(annotations, dict) and annotations.get("summary")
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", str(rule["for"]))
    assert_exported(check_promql(str(rule["expr"])), f"alert {rule['alert']}")


def test_queue_depth_per_destination_is_alerted_on() -> None:
    exprs = [str(r["expr"]) for r in alert_rules()]
    assert any("inlet_broker_queue_size" in e and "inlet_broker_queue_consumers" in e for e in exprs)


def test_prometheus_scrapes_every_inlet_service_and_loads_the_rules() -> None:
    doc = yaml.safe_load((MON / "prometheus.yml").read_text())
    assert doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert {"inlet-listener", "inlet-uploader", "inlet-web", "rucio-server", "rucio-daemons"} <= set(jobs)
    compose = yaml.safe_load((MON / "compose.yaml").read_text())
    services = compose["services"]
    for job, service in (("inlet-listener", "listener"), ("inlet-uploader", "uploader"), ("inlet-web", "web")):
        (target,) = jobs[job]["static_configs"][0]["targets"]
        host, port = target.split(":")
        env = services[service]["environment"]
        prefix = {"listener": "LISTENER", "uploader": "UPLOADER", "web": "WEB"}[service]
        assert host == service and env[f"INLET_{prefix}__METRICS_PORT"] == port
        assert env[f"INLET_{prefix}__METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - scraped from another container


def test_the_checker_catches_mistakes() -> None:
    assert check_promql('sum by (rse) (rate(inlet_x_total{a="b"}[5m])) / 1e-9') == {"inlet_x_total"}
    for bad in ("rate(inlet_x[5m]", "rate(inlet_x[5 minutes])", "nosuchfn(inlet_x)", 'inlet_x{a=="b"}', ""):
        with pytest.raises(AssertionError):
            check_promql(bad)
    with pytest.raises(AssertionError):
        assert_exported({"inlet_no_such_metric_total"}, "test")
