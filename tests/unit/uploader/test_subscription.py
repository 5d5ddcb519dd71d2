"""The DAQ releaser's subscription counts only once the broker confirms it with its own receipt."""

from __future__ import annotations

from typing import Any

import pytest

from inlet import messaging
from inlet.config import BrokerSettings
from inlet.uploader import events


class FakeConnection:
    """Stands in for stomp.Connection12: answers a SUBSCRIBE with a receipt, or with none."""

    answer: str | None = "own"

    def __init__(self, *_: Any, **__: Any) -> None:
        self.listeners: dict[str, Any] = {}
        self.disconnected = False

    def set_listener(self, name: str, listener: Any) -> None:
        self.listeners[name] = listener

    def remove_listener(self, name: str) -> None:
        del self.listeners[name]

    def connect(self, *_: Any, **__: Any) -> None:
        pass

    def subscribe(self, destination: str, id: str, ack: str, headers: dict[str, str]) -> None:
        if self.answer is None:
            return

        rid = headers["receipt"] if self.answer == "own" else "someone-else"
        frame = type("Frame", (), {"headers": {"receipt-id": rid}})()
        for listener in list(self.listeners.values()):
            if hasattr(listener, "on_receipt"):
                listener.on_receipt(frame)

    def is_connected(self) -> bool:
        return not self.disconnected

    def disconnect(self) -> None:
        self.disconnected = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeConnection]:
    monkeypatch.setattr(messaging.stomp, "Connection12", FakeConnection)
    monkeypatch.setattr(events, "SUBSCRIBE_TIMEOUT", 0.2)
    return FakeConnection


def test_a_confirmed_subscription_is_alive(fake: type[FakeConnection], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "answer", "own")
    sub = events.Subscription(BrokerSettings(), lambda doc: None)
    sub.open()
    assert sub.alive


@pytest.mark.parametrize("answer", [None, "other"])
def test_an_unconfirmed_subscription_is_an_error_and_closed(
    fake: type[FakeConnection], monkeypatch: pytest.MonkeyPatch, answer: str | None
) -> None:
    monkeypatch.setattr(fake, "answer", answer)
    sub = events.Subscription(BrokerSettings(), lambda doc: None)
    with pytest.raises(ConnectionError, match="did not confirm the subscription"):
        sub.open()
    assert not sub.alive
