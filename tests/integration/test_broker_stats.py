"""Queue depth per broker destination, asked of the lake's real ActiveMQ (statistics plugin)."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, generate_latest

from inlet.broker_stats import QueueDepthCollector, broker_memory, queue_depths
from inlet.lake.lake import Lake
from inlet.messaging import Connection, Subscription
from tests.integration.conftest import wait_for


def test_a_queue_without_consumer_shows_its_depth_and_no_consumer(lake: Lake) -> None:
    b = lake.settings.broker
    name = f"inlet.test.unconsumed.{uuid.uuid4().hex[:8]}"
    with Connection(b) as conn:  # persistent messages, the last one confirmed by a receipt
        conn.send_all(f"/queue/{name}", ((f"message {i}", {}) for i in range(7)))

    # The broker stores persistent messages as they come: wait (bounded) until all 7 are in.
    depths = wait_for(
        f"7 messages of {name} in the broker's statistics",
        lambda: (d := queue_depths(b).get(name)) and d["size"] == 7 and d,
        60,
    )
    assert depths["size"] == 7 and depths["consumers"] == 0 and depths["enqueued"] == 7

    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(b))
    text = generate_latest(registry).decode()
    assert f'inlet_broker_queue_size{{destination="{name}"}} 7.0' in text
    assert f'inlet_broker_queue_consumers{{destination="{name}"}} 0.0' in text
    assert "inlet_broker_up 1.0" in text
    # The listener's queues are there too (composite topics forward into them).
    assert lake.settings.listener.rucio_queue.removeprefix("/queue/") in text

    # Tidy: drain the test's queue (the broker keeps the empty queue; a consumer shows up while here).
    with Connection(b, subscriptions=[Subscription(f"/queue/{name}", "drain")], on_message=lambda _m: None):
        wait_for(f"{name} drained", lambda: queue_depths(b).get(name, {}).get("size") == 0, 60)


def test_an_unreachable_broker_is_a_zero_not_a_failed_scrape(lake: Lake) -> None:
    broker = lake.settings.broker.model_copy(update={"stomp_port": 1})
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(broker, timeout=2))
    assert "inlet_broker_up 0.0" in generate_latest(registry).decode()


def test_a_queue_without_consumer_caches_at_most_its_cap_and_keeps_every_message(lake: Lake) -> None:
    """12 MB of messages for nobody: the queue holds at most its 8 MB cap of the broker's heap (the
    rest waits in KahaDB), so a listener that is down cannot fill the broker's memory and throttle
    every producer, and still every message comes out, in order."""
    b = lake.settings.broker
    name = f"inlet.test.memcap.{uuid.uuid4().hex[:8]}"
    pad = "x" * 10_000
    n = 1_200
    with Connection(b) as conn:
        conn.send_all(f"/queue/{name}", ((f"{i:05d} {pad}", {}) for i in range(n)))
    depths = wait_for(
        f"{n} messages of {name} in the broker's statistics",
        lambda: (d := queue_depths(b).get(name)) and d["size"] == n and d,
        60,
    )
    assert depths["memory_limit_bytes"] == 8 * 2**20
    assert 0 < depths["memory_bytes"] <= depths["memory_limit_bytes"]

    got: list[str] = []
    with Connection(
        b,
        subscriptions=[Subscription(f"/queue/{name}", "drain")],
        on_message=lambda m: got.append(m.body.decode()),
    ):
        wait_for(f"{name} drained", lambda: len(got) >= n and queue_depths(b).get(name, {}).get("size") == 0, 120)
    assert [g[:5] for g in got] == [f"{i:05d}" for i in range(n)]
    assert all(g.endswith(pad) for g in got)
    # The broker as a whole: the lake's 96 MB limit, far from full (full: every publisher waits).
    memory = broker_memory(b)
    assert memory["limit_bytes"] == 96 * 2**20
    assert 0 <= memory["percent"] < 100 and memory["bytes"] < memory["limit_bytes"]
