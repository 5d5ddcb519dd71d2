"""DurableFeed on the lake's real ActiveMQ, with the readers' login: what is published while the
feed is down reaches it after it reconnects; the name is held by one connection at a time;
forget() drops the subscription and what it kept."""

from __future__ import annotations

import json
import queue
import uuid

import pytest

from inlet.event_contract import envelope
from inlet.follow.feed import DurableFeed, FeedInUse
from inlet.lake.lake import Lake
from inlet.messaging import Connection, Message
from tests.integration.conftest import wait_for


def publish(lake: Lake, tag: str, n: int, start: int = 0) -> None:
    """Well-formed inlet events of a type no listener route takes (the inlet topic also feeds the
    listener's queue: anything else would end in its DLQ)."""
    b = lake.settings.broker
    frames = (
        (json.dumps(envelope("feed-test", {"tag": tag, "i": i})), {"event_type": "feed-test", "tag": tag})
        for i in range(start, start + n)
    )
    with Connection(b) as conn:
        conn.send_all(b.inlet_topic, frames)


def feed(lake: Lake, name: str | None, tag: str, inbox: queue.Queue[int], connected: list[int]) -> DurableFeed:
    def on_message(m: Message) -> None:
        doc = json.loads(m.body)["payload"]
        if doc.get("tag") == tag:
            inbox.put(int(doc["i"]))

    return DurableFeed(
        lake.settings.broker,
        [lake.settings.broker.inlet_topic],
        name=name,
        on_message=on_message,
        on_connected=lambda: connected.append(1),
        selector=f"tag = '{tag}'",
    )


def drain(inbox: queue.Queue[int], n: int) -> list[int]:
    got = [inbox.get(timeout=60) for _ in range(n)]  # a bound against a hang
    return got


def test_events_published_while_the_feed_is_down_arrive_after_it_reconnects(lake: Lake) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"test.feed.{tag}"
    inbox: queue.Queue[int] = queue.Queue()
    connected: list[int] = []
    f = feed(lake, name, tag, inbox, connected)
    f.start()
    assert f.wait_connected(60)
    publish(lake, tag, 3)
    assert sorted(drain(inbox, 3)) == [0, 1, 2]
    f.stop()

    publish(lake, tag, 5, start=3)  # nobody connected: the broker keeps these for the name

    again = feed(lake, name, tag, inbox, connected)
    again.start()
    assert again.wait_connected(60)
    assert sorted(drain(inbox, 5)) == [3, 4, 5, 6, 7]
    assert len(connected) == 2  # on_connected after each connect: where owners catch up

    # One connection at a time may be this feed.
    twin = feed(lake, name, tag, queue.Queue(), [])
    with pytest.raises(FeedInUse):
        twin.connect()
    twin.stop()

    # The broker drops the connection (as in a broker restart): the feed reconnects by itself.
    again.conn.close()
    wait_for("the feed to reconnect", lambda: len(connected) == 3, timeout=60)
    publish(lake, tag, 1, start=8)
    assert drain(inbox, 1) == [8]

    again.forget()
    publish(lake, tag, 2, start=9)  # no subscription any more: nothing kept
    last = feed(lake, name, tag, inbox, [])
    last.start()
    assert last.wait_connected(60)
    publish(lake, tag, 1, start=11)
    assert drain(inbox, 1) == [11]
    last.forget()
    assert inbox.empty()


def test_a_plain_feed_keeps_nothing_while_down(lake: Lake) -> None:
    tag = uuid.uuid4().hex[:8]
    inbox: queue.Queue[int] = queue.Queue()
    f = feed(lake, None, tag, inbox, [])
    f.start()
    assert f.wait_connected(60)
    publish(lake, tag, 1)
    assert drain(inbox, 1) == [0]
    f.stop()
    publish(lake, tag, 1, start=1)
    f2 = feed(lake, None, tag, inbox, [])
    f2.start()
    assert f2.wait_connected(60)
    publish(lake, tag, 1, start=2)
    assert drain(inbox, 1) == [2]
    f2.stop()
