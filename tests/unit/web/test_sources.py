"""Parsers the web pages and the listener's metrics rely on, on samples of what the real
services send (ActiveMQ's jms-map-json statistics reply, the listener's metrics text)."""

from __future__ import annotations

import json

from inlet.broker_stats import parse_map
from inlet.config import metrics_url
from inlet.web.sources import RateMeter, parse_listener_metrics

# Shape of a reply from ActiveMQ 5.17's statistics plugin with transformation jms-map-json (abridged).
STATS_REPLY = json.dumps(
    {
        "map": {
            "entry": [
                {"string": "dequeueCount", "long": 9},
                {"string": ["brokerId", "ID:vm-1"]},
                {"string": "size", "long": 16872},
                {"string": "consumerCount", "long": 0},
                {"string": "enqueueCount", "long": 16881},
                {"string": ["destinationName", "queue://inlet.listener.rucio"]},
                {"string": "averageEnqueueTime", "double": 1.5},
            ]
        }
    }
)

METRICS = """# HELP inlet_listener_events_total Events taken from the broker
# TYPE inlet_listener_events_total counter
inlet_listener_events_total{event_type="transfer-done",outcome="handled"} 40.0
inlet_listener_events_total{event_type="rule_ok",outcome="handled"} 2.0
inlet_listener_events_total{event_type="junk",outcome="dead-lettered"} 1.0
# HELP inlet_listener_lag_seconds Event age when handled (now - created_at)
# TYPE inlet_listener_lag_seconds histogram
inlet_listener_lag_seconds_bucket{le="1.0"} 40.0
inlet_listener_lag_seconds_bucket{le="+Inf"} 42.0
inlet_listener_lag_seconds_count 42.0
inlet_listener_lag_seconds_sum 21.0
# HELP inlet_listener_dead_lettered_total Messages sent to the DLQ
# TYPE inlet_listener_dead_lettered_total counter
inlet_listener_dead_lettered_total{reason="malformed"} 1.0
"""


def test_statistics_reply_becomes_a_plain_dict() -> None:
    stats = parse_map(STATS_REPLY)
    assert stats["size"] == 16872 and stats["consumerCount"] == 0
    assert stats["destinationName"] == "queue://inlet.listener.rucio" and stats["brokerId"] == "ID:vm-1"
    assert parse_map('{"map": {"entry": {"string": "size", "long": 3}}}') == {"size": 3}
    assert parse_map('{"map": ""}') == {}


def test_listener_metrics_give_totals_lag_and_dead_letters() -> None:
    m = parse_listener_metrics(METRICS)
    assert m.events_total == 43 and m.by_outcome == {"handled": 42, "dead-lettered": 1}
    assert m.lag_mean == 0.5 and m.lag_count == 42 and m.dead_lettered == 1


def test_rate_meter_needs_two_looks_a_second_apart() -> None:
    meter = RateMeter()
    assert meter.update(100, now=10.0) is None
    assert meter.update(150, now=10.5) is None  # too close to tell
    assert meter.update(200, now=20.0) == 10.0
    assert meter.update(100, now=30.0) == 10.0  # a restarted listener (counter reset): keep the last rate


def test_metrics_url_reads_a_wildcard_bind_on_loopback() -> None:
    assert metrics_url("0.0.0.0", 9108) == "http://127.0.0.1:9108/metrics"  # noqa: S104
    assert metrics_url("listener", 9108) == "http://listener:9108/metrics"
    assert metrics_url("::1", 9108) == "http://[::1]:9108/metrics"
