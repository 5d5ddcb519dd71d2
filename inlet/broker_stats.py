"""Queue depth per broker destination, asked of ActiveMQ itself (its statistics plugin).

Why: a queue fed by a composite topic keeps every message while no listener consumes it
(16,872 messages in ~40 minutes of tests), and nothing else says so until the broker's store is
full. ActiveMQ's ``statisticsBrokerPlugin`` (enabled by the lake and in docker/activemq) answers
a message sent to ``ActiveMQ.Statistics.Destination.<pattern>`` with one map per matching
destination, sent to the request's ``reply-to``. STOMP renders a map as JSON when the
subscription asks for ``transformation: jms-map-json``.

:class:`QueueDepthCollector` asks at every Prometheus scrape (``inlet_broker_queue_size`` and
friends, served by ``inlet listen``'s metrics endpoint); the web's listener page shows the same.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

from inlet.config import BrokerSettings
from inlet.errors import InletError
from inlet.messaging import Connection, Subscription

#: Every queue the broker has (statistics are asked per queue; the pattern is ActiveMQ's wildcard).
ALL_QUEUES = "/queue/ActiveMQ.Statistics.Destination.>"
#: Statistics of the plugin's own request/reply queues and the broker's internals are left out.
_SKIP = ("ActiveMQ.", "inlet.stats.")


class BrokerStatsError(InletError):
    """The broker did not answer with statistics."""


def parse_map(body: str | bytes) -> dict[str, Any]:
    """ActiveMQ's ``jms-map-json`` rendering of a MapMessage, as a plain dict.

    The rendering is XStream's: ``{"map": {"entry": [...]}}`` where an entry with two strings
    is ``{"string": [key, value]}`` and any other is ``{"string": key, "<type>": value}``.
    """
    doc = json.loads(body)
    entries = (doc.get("map") or {}).get("entry") or []
    if isinstance(entries, dict):
        entries = [entries]
    out: dict[str, Any] = {}
    for e in entries:
        if not isinstance(e, dict):
            continue
        key = e.get("string")
        if isinstance(key, list) and len(key) == 2:
            out[str(key[0])] = key[1]
            continue
        for kind, value in e.items():
            if kind != "string":
                out[str(key)] = value
    return out


#: The broker's own totals: memory (the heap its pending messages hold) against its limit.
BROKER = "/queue/ActiveMQ.Statistics.Broker"


def _replies(broker: BrokerSettings, destination: str, timeout: float, quiet: float, one: bool) -> Iterator[bytes]:
    """Ask the statistics plugin at ``destination``; yield each reply's body.

    The plugin sends one reply per destination and no end mark: replies are collected until none
    came for ``quiet`` seconds (after the first), or ``timeout`` passed; with ``one``, the first.
    """
    bodies: queue.Queue[bytes] = queue.Queue()
    reply_to = f"/queue/inlet.stats.{uuid.uuid4().hex}"
    conn = Connection(
        broker,
        # STOMP renders the plugin's MapMessages as JSON when the subscription asks for it.
        subscriptions=[Subscription(reply_to, "stats", headers={"transformation": "jms-map-json"})],
        on_message=lambda message: bodies.put(message.body),
    )
    with conn:  # BrokerUnavailable (an InletError) when the broker is down or refuses the login
        conn.send(destination, "", headers={"reply-to": reply_to}, receipt=False)
        deadline = time.monotonic() + timeout
        got_any = False
        while time.monotonic() < deadline:
            try:
                body = bodies.get(timeout=quiet if got_any else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if got_any:
                    return
                raise BrokerStatsError(
                    "the broker sent no statistics",
                    "enable ActiveMQ's <statisticsBrokerPlugin/> (the lake and docker/activemq do)",
                ) from None
            got_any = True
            yield body
            if one:
                return


def queue_depths(broker: BrokerSettings, timeout: float = 5.0, quiet: float = 0.5) -> dict[str, dict[str, int]]:
    """``{queue name: {size, consumers, enqueued, dequeued, memory_bytes, memory_limit_bytes}}``
    for every queue of the broker."""
    out: dict[str, dict[str, int]] = {}
    for body in _replies(broker, ALL_QUEUES, timeout, quiet, one=False):
        try:
            stats = parse_map(body)
        except ValueError:
            continue
        name = str(stats.get("destinationName", ""))
        name = name.split("://", 1)[-1]
        if not name or name.startswith(_SKIP):
            continue
        out[name] = {
            "size": int(stats.get("size", 0)),
            "consumers": int(stats.get("consumerCount", 0)),
            "enqueued": int(stats.get("enqueueCount", 0)),
            "dequeued": int(stats.get("dequeueCount", 0)),
            # What the queue's pending messages hold of the broker's heap, against the queue's
            # cap (the lake's policy: 8 MB; the rest waits in the store, none is dropped).
            "memory_bytes": int(stats.get("memoryUsage", 0)),
            "memory_limit_bytes": int(stats.get("memoryLimit", 0)),
        }
    return out


def broker_memory(broker: BrokerSettings, timeout: float = 5.0) -> dict[str, int]:
    """``{percent, bytes, limit_bytes, pending}``: how full the broker's memory is. At 100 %
    ActiveMQ's producer flow control holds every publisher (hermes, the uploaders) back."""
    # _replies yields a reply or raises BrokerStatsError: next() always has one.
    stats = parse_map(next(_replies(broker, BROKER, timeout, 0.5, one=True)))
    return {
        "percent": int(stats.get("memoryPercentUsage", 0)),
        "bytes": int(stats.get("memoryUsage", 0)),
        "limit_bytes": int(stats.get("memoryLimit", 0)),
        "pending": int(stats.get("size", 0)),
    }


class QueueDepthCollector:
    """Prometheus collector: asks the broker at each scrape (a failed ask: ``inlet_broker_up 0``)."""

    def __init__(self, broker: BrokerSettings, timeout: float = 5.0) -> None:
        self.broker = broker
        self.timeout = timeout

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("inlet_broker_up", "1 if the broker answered the last statistics request")
        try:
            depths = queue_depths(self.broker, self.timeout)
        except (InletError, OSError):  # BrokerUnavailable is an InletError
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        size = GaugeMetricFamily(
            "inlet_broker_queue_size", "Messages waiting in a broker queue", labels=["destination"]
        )
        consumers = GaugeMetricFamily(
            "inlet_broker_queue_consumers", "Consumers of a broker queue", labels=["destination"]
        )
        enq = CounterMetricFamily(
            "inlet_broker_queue_enqueued",
            "Messages put into a broker queue since the broker started",
            labels=["destination"],
        )
        deq = CounterMetricFamily(
            "inlet_broker_queue_dequeued",
            "Messages taken from a broker queue since the broker started",
            labels=["destination"],
        )
        memory = GaugeMetricFamily(
            "inlet_broker_queue_memory_bytes",
            "Broker heap held by a queue's pending messages (it caches up to its memory limit)",
            labels=["destination"],
        )
        for name, s in sorted(depths.items()):
            memory.add_metric([name], s["memory_bytes"])
            size.add_metric([name], s["size"])
            consumers.add_metric([name], s["consumers"])
            enq.add_metric([name], s["enqueued"])
            deq.add_metric([name], s["dequeued"])
        yield from (size, consumers, enq, deq, memory)
