"""inlet.messaging at the stomp.py seam: a frame counts once the broker confirmed it, and every
failure is one BrokerUnavailable (an InletError and a ConnectionError) that says what went wrong."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from inlet import messaging
from inlet.config import BrokerSettings
from inlet.errors import InletError
from inlet.messaging import BrokerUnavailable, Connection


class Frame:
    def __init__(self, headers: dict[str, str], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body


class FakeBroker:
    """Stands in for stomp.Connection12: answers a frame that asks for a receipt as ``answer`` says."""

    answer = "receipt"  # or "error", or "nothing"
    sent: list[tuple[str, dict[str, str]]]

    def __init__(self, *_: Any, **__: Any) -> None:
        self.listeners: dict[str, Any] = {}
        self.connected = False
        FakeBroker.sent = []

    def set_listener(self, name: str, listener: Any) -> None:
        self.listeners[name] = listener

    def remove_listener(self, name: str) -> None:
        del self.listeners[name]

    def connect(self, *_: Any, **__: Any) -> None:
        self.connected = True

    def is_connected(self) -> bool:
        return self.connected

    def disconnect(self) -> None:
        self.connected = False

    def send(self, destination: str, body: Any, headers: dict[str, str]) -> None:
        self.sent.append((destination, headers))
        if "receipt" not in headers or self.answer == "nothing":
            return
        if self.answer == "receipt":
            frame, event = Frame({"receipt-id": headers["receipt"]}), "on_receipt"
        else:
            frame = Frame({"receipt-id": headers["receipt"], "message": "User x is not authorized to write"})
            event = "on_error"
        for listener in list(self.listeners.values()):
            getattr(listener, event)(frame)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeBroker]:
    monkeypatch.setattr(messaging.stomp, "Connection12", FakeBroker)
    return FakeBroker


def connection() -> Connection:
    conn = Connection(BrokerSettings(), receipt_timeout=0.2)
    conn.connect()
    return conn


def test_a_send_returns_once_the_broker_confirmed_it(fake: type[FakeBroker], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "answer", "receipt")
    connection().send("/topic/x", "{}", {"event_type": "x"})
    ((dest, headers),) = fake.sent
    assert dest == "/topic/x" and headers["persistent"] == "true" and headers["receipt"]


def test_a_refused_send_is_an_error_carrying_the_brokers_message(
    fake: type[FakeBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "answer", "error")
    with pytest.raises(BrokerUnavailable) as err:
        connection().send("/topic/x", "{}")
    assert err.value.broker_error == "User x is not authorized to write"


def test_an_unconfirmed_send_is_an_error(fake: type[FakeBroker], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "answer", "nothing")
    with pytest.raises(BrokerUnavailable, match="did not confirm the message to /topic/x within"):
        connection().send("/topic/x", "{}")


def test_send_all_asks_one_receipt_for_the_lot(fake: type[FakeBroker], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "answer", "receipt")
    assert connection().send_all("/queue/q", ((str(i), {}) for i in range(5))) == 5
    assert ["receipt" in headers for _, headers in fake.sent] == [False] * 4 + [True]


def test_no_broker_is_one_error_that_is_both_an_inlet_error_and_a_connection_error() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(BrokerUnavailable, match=f"cannot reach the broker at 127.0.0.1:{port}") as err:
        Connection(BrokerSettings(stomp_port=port)).connect()
    assert isinstance(err.value, InletError) and isinstance(err.value, ConnectionError)
    assert "inlet lake up" in err.value.fix
