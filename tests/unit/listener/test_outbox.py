from __future__ import annotations

from typing import Any

from rucio_inlet.catalog_models import OutboxMessage
from sqlalchemy import select
from sqlalchemy.orm import Session

from inlet.catalog import Catalog, ledger
from inlet.config import AlarmSettings
from inlet.listener.handlers.alarms import queue_alarm
from inlet.listener.outbox import Dispatcher, WebhookSender


class Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers = {"Retry-After": "3"}
        self.text = ""


class FakeHttp:
    def __init__(self, status: int = 204) -> None:
        self.posts: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.status = status

    def post(self, url: str, json: dict[str, Any], headers: dict[str, str], timeout: float) -> Response:
        self.posts.append((url, json, headers))
        return Response(self.status)


def queue(catalog: Catalog, settings: AlarmSettings, *fingerprints: str) -> None:
    def work(s: Session) -> None:
        for f in fingerprints:
            queue_alarm(s, settings, f, f"alarm {f}")

    catalog.transaction(work)


def test_rate_limit_suppresses_and_the_next_alarm_says_how_many(catalog: Catalog) -> None:
    settings = AlarmSettings(webhook_url="http://hook", rate_limit=2, rate_period=0.5)
    http = FakeHttp()
    send = Dispatcher({"webhook": WebhookSender(settings, http)})  # type: ignore[arg-type]
    queue(catalog, settings, "a", "b", "c", "d")
    assert ledger.drain(catalog, send) == 4
    assert [p[1]["content"] for p in http.posts] == ["alarm a", "alarm b"]
    assert http.posts[0][2]["Idempotency-Key"].startswith("alarm:")
    with catalog.session() as s:
        kinds = [m.kind for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert kinds == ["webhook", "webhook", "webhook-suppressed", "webhook-suppressed"]
    import time

    time.sleep(0.6)  # let the rate window pass (not a timed assertion: it moves the window)
    queue(catalog, settings, "e")
    ledger.drain(catalog, send)
    assert http.posts[-1][1]["content"].startswith("alarm e\n(+2 more alarm(s) suppressed")


def test_a_failing_webhook_leaves_the_alarm_pending(catalog: Catalog) -> None:
    settings = AlarmSettings(webhook_url="http://hook")
    send = Dispatcher({"webhook": WebhookSender(settings, FakeHttp(status=429))})  # type: ignore[arg-type]
    queue(catalog, settings, "a")
    assert ledger.drain(catalog, send) == 0
    with catalog.session() as s:
        msg = s.scalars(select(OutboxMessage)).one()
    assert msg.sent_at is None and msg.attempts == 1 and "429" in (msg.last_error or "")


def test_an_unknown_outbox_kind_stays_pending_with_the_reason(catalog: Catalog) -> None:
    catalog.transaction(lambda s: ledger.enqueue(s, "celery", {}, "k1"))
    assert ledger.drain(catalog, Dispatcher({})) == 0
    with catalog.session() as s:
        assert "no sender for outbox kind 'celery'" in (s.scalars(select(OutboxMessage)).one().last_error or "")
