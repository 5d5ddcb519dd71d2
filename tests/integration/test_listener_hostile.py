"""No message can end ``inlet listen`` (issue 13): the hostile corpus, published on the real
broker's topics with the logins allowed to publish there, lands in the DLQ with a reason,
the listener stays up, and a good event published after them is still handled. A message
that kills the process whenever it is handled is dead-lettered after ``max_deliveries``.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess

from inlet.lake.lake import Lake
from inlet.listener.dlq import DeadLetterQueue
from inlet.listener.events import BadEvent, parse_message
from tests.integration.test_listener_faults import (  # noqa: F401 (fixtures)
    Publisher,
    Setup,
    catalog_url,
    effects,
    plugin_path,
    probe_event,
    queue_depth,
    setup,
    until,
)
from tests.unit.listener.test_events_hostile import CORPUS

#: The lake's real queues: the composite topics forward into these.
REAL_QUEUES = {
    "INLET_LISTENER__RUCIO_QUEUE": "/queue/inlet.listener.rucio",
    "INLET_LISTENER__INLET_QUEUE": "/queue/inlet.listener.inlet",
}


def raw_send(lake: Lake, login: str, passcode: str, frames: list[tuple[list[bytes], bytes]]) -> list[bytes]:
    """Send SEND frames byte for byte (headers stomp.py would never write); returns each receipt reply."""
    b = lake.settings.broker
    replies = []
    with socket.create_connection((b.host, b.stomp_port), timeout=30) as sock:
        sock.sendall(
            f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{login}\npasscode:{passcode}\n\n\x00".encode()
        )
        assert sock.recv(4096).startswith(b"CONNECTED")
        for i, (headers, body) in enumerate(frames):
            receipt = f"r{i}".encode()
            head = b"\n".join([b"SEND", *headers, b"receipt:" + receipt, b"content-length:%d" % len(body)])
            sock.sendall(head + b"\n\n" + body + b"\x00")
            reply = b""
            while b"\x00" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            replies.append(reply)
    return replies


def _rejected(body: bytes, lake: Lake) -> bool:
    try:
        parse_message(body, {}, lake.settings.listener.max_body_bytes)
    except BadEvent:
        return True
    return False


def test_the_hostile_corpus_goes_to_the_dlq_and_the_listener_stays_up(setup: Setup) -> None:  # noqa: F811
    lake = setup.lake
    b = lake.settings.broker
    proc = setup.start(**REAL_QUEUES)
    setup.wait_subscribed(proc)

    tag = setup.tag.encode()
    bodies = dict(CORPUS)
    bodies["much too big"] = b'{"event_type": "x", "pad": "' + b"x" * 1_500_000 + b'"}'
    # Random ones (fixed seed: the same corpus every run).
    rnd = random.Random(13)
    for i in range(20):
        bodies[f"random bytes {i}"] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
    # Those the parser rejects must be in the DLQ (this test's own), each with a reason; the rest
    # (well-formed, with a name whose "run number" no int() could take) are handled harmlessly.
    marked = {case: body for case, body in bodies.items() if _rejected(body, lake)}
    assert len(marked) >= len(bodies) - 2
    frames: list[tuple[list[bytes], bytes]] = []
    garbage_headers = [
        [],  # no header at all
        [b"event_type:\xff\xfe\xfd"],  # not UTF-8
        [b"event_type:" + b"e" * 5000, b"inlet_deliveries:99999999999999999999"],
        [b"redelivered:true", b"inlet_deliveries:4"],  # forged broker/listener headers
        [b"content-type:application/json;charset=latin-1", b"JMSXUserID:hermes", b"persistent:maybe"],
        [b"x:" + b"\\n" * 50, b"empty:"],
    ]
    for i, (_case, body) in enumerate(sorted(bodies.items())):
        headers = [b"destination:" + b.inlet_topic.encode(), b"inlet_case:" + tag, *garbage_headers[i % 6]]
        frames.append((headers, body))
    replies = raw_send(lake, b.username, b.password, frames)
    assert all(r.startswith(b"RECEIPT") for r in replies), [r[:200] for r in replies if not r.startswith(b"RECEIPT")]
    bad_corpus = [body for body in CORPUS.values() if _rejected(body, lake)]
    # The same corpus as hermes would send it, on Rucio's topic with hermes' login.
    hermes = raw_send(
        lake,
        b.hermes_username,
        b.hermes_password,
        [([b"destination:" + b.rucio_topic.encode(), b"event_type:transfer-done"], body) for body in bad_corpus],
    )
    assert all(r.startswith(b"RECEIPT") for r in hermes)

    # Then a good event: still handled.
    pub = Publisher(lake)
    pub.send(b.inlet_topic, probe_event(f"{setup.tag}-good"))
    assert until(lambda: effects(setup.catalog_url, setup.tag) == {f"{setup.tag}-good": 1}, 180), setup.logs()
    total = len(marked) + len(bad_corpus)
    assert until(lambda: queue_depth(lake, setup.dlq) >= total, 180), setup.logs()
    assert proc.poll() is None, "no message may end the listener:\n" + setup.logs()

    dlq = DeadLetterQueue(b, lake.settings.listener.model_copy(update={"dlq": setup.dlq}))
    letters = dlq.letters()
    by_body: dict[bytes, list[str]] = {}
    for letter in letters:
        by_body.setdefault(letter.body, []).append(letter.reason)
    for case, body in marked.items():
        found = by_body.get(body)
        assert found and all(found), f"{case}: not in the DLQ with a reason"
    # `inlet events dlq list` shows them, one line each, with the reason.
    listed = setup.cli("events", "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]
    assert len(rows) == len(letters) and all(r[4] for r in rows)
    reasons = " | ".join(r[4] for r in rows)
    for expected in (
        "an integer of 5001 digits",
        "JSON nested",
        "not UTF-8",
        "oversized body: 1500",
        "payload field name must be a string",
        "event_type",
    ):
        assert expected in reasons, expected
    shown = setup.cli("events", "dlq", "show", rows[0][0])
    assert shown.returncode == 0, shown.stderr
    pub.close()


def test_a_message_that_kills_the_listener_is_dead_lettered_after_max_deliveries(setup: Setup) -> None:  # noqa: F811
    setup.extra_toml = "max_deliveries = 3\n"
    pub = Publisher(setup.lake)
    pub.send(setup.queue, probe_event(f"{setup.tag}-poison", action="die"))
    deaths = 0
    # A supervisor's restarts: each listener dies on the message until it is dead-lettered.
    for _ in range(6):
        proc = setup.start()

        def settled(p: subprocess.Popen[bytes] = proc) -> bool:
            return p.poll() is not None or queue_depth(setup.lake, setup.dlq) == 1

        if not until(settled, 120):
            break
        if proc.poll() is None:
            break
        assert proc.returncode == 9, setup.logs()
        deaths += 1
    assert deaths == 3, setup.logs()
    assert queue_depth(setup.lake, setup.dlq) == 1
    (letter,) = DeadLetterQueue(
        setup.lake.settings.broker, setup.lake.settings.listener.model_copy(update={"dlq": setup.dlq})
    ).letters()
    assert letter.reason.startswith("delivered 3 times without being settled"), letter.reason
    assert json.loads(letter.body)["id"] == f"{setup.tag}-poison"
    # The last listener is still up and handles what comes next.
    pub.send(setup.queue, probe_event(f"{setup.tag}-next"))
    assert until(lambda: effects(setup.catalog_url, setup.tag).get(f"{setup.tag}-next") == 1), setup.logs()
    assert setup.procs[-1].poll() is None
    pub.close()
