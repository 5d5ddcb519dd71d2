"""A named, durable subscription to broker topics, kept connected: :class:`DurableFeed`.

Why a durable topic subscription (and not a queue per name)
-----------------------------------------------------------
A follower (``inlet follow --name N``, the rehearsal's downloader) wants every event published
while it was down or while the broker restarted. ActiveMQ offers two ways:

* a *durable topic subscription*: the connection sends a STOMP ``client-id`` on CONNECT and
  the SUBSCRIBE carries ``activemq.subscriptionName``; the broker keeps, for that (client-id,
  name), every message published on the topic from the first subscription on, in its
  persistent store, across disconnects and broker restarts. It needs nothing in the broker's
  configuration beyond *read* and *admin* on the topic (plus the advisory topics), which the
  lake's ``reader`` role has (:meth:`inlet.lake.services.activemq.ActiveMQ.authorization_entries`);
* a queue per follower fed by a composite topic: it needs broker XML per follower name and
  a restart of the broker, and queues are the ``inlet`` role's.

The first is self-service for any reader, so that is what this uses. It also gives a lock for
free: ActiveMQ lets one connection at a time use a client-id, so two processes that claim to
be the same follower cannot both run (the second is told so, :class:`FeedInUse`). The
listener, which needs competing consumers, uses the composite-topic queues instead
(:mod:`inlet.listener`).

What a site's broker needs: persistence on (``persistent="true"``, the kept messages live in
its store), and for the login used (``[broker] reader_username`` by default) read and admin
on each topic followed and on ``ActiveMQ.Advisory.>``. A durable subscription whose follower
never comes back keeps growing: :meth:`DurableFeed.forget` removes it (``inlet follow --forget``).

Generic on purpose: topics in, messages out, and an ``on_connected`` callback after every
(re)connect, where the owner runs its catch-up listing of what it missed while no feed ran
(the events are the wake-up; the owner's own store is the truth).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence

from inlet.config import BrokerSettings
from inlet.errors import InletError
from inlet.messaging import BrokerUnavailable, Connection, Message, Role, Subscription

log = logging.getLogger(__name__)

#: A feed name becomes a STOMP client-id and subscription names: kept to characters every
#: broker accepts, and short.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_FIX = "use 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"


class FeedInUse(InletError):
    """Another connection holds this feed's client-id: the same follower runs elsewhere."""


def check_name(name: str, what: str = "follower name") -> str:
    """``name`` if it can be a client-id, else a one-line :class:`InletError`."""
    if not NAME.match(name):
        raise InletError(f"{what} {name[:80]!r} is not allowed", NAME_FIX)
    return name


def _physical(destination: str) -> str:
    for prefix in ("/topic/", "/queue/"):
        if destination.startswith(prefix):
            return destination[len(prefix) :]
    return destination


class DurableFeed:
    """Messages of ``topics`` to ``on_message``; durable when ``name`` is given; reconnecting.

    - ``name``: the durable identity (client-id ``name``, one subscription per topic named after
      the topic). ``None``: plain subscriptions, nothing is kept while disconnected.
    - ``on_message(message)`` runs on stomp.py's receiver thread: it must not block. The message
      is acknowledged after it returns; if it raises, it is not, and the broker delivers it again
      after the next reconnect (``ack_after_callback=False``: the owner calls :meth:`ack`).
      Delivery is at least once: a connection lost between the callback and the ack brings the
      message again (its ``redelivered`` is then true); owners dedupe, or treat messages as
      wake-ups and read the truth elsewhere (as ``inlet follow`` does).
    - ``on_connected()`` runs on the feed's thread after every connect, once the broker confirmed
      every subscription: anything published from then on reaches ``on_message``, so a catch-up
      listing run here misses nothing. An exception there is logged and the feed goes on.
    - ``selector``: a JMS selector on the message headers (e.g. ``event_type IN ('transfer-done')``),
      evaluated by the broker, so a durable subscription keeps only what the owner wants.

    :meth:`start` runs a thread that connects with backoff and reconnects after every loss.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        topics: Sequence[str],
        *,
        name: str | None,
        on_message: Callable[[Message], None],
        on_connected: Callable[[], None] | None = None,
        role: Role = "reader",
        selector: str | None = None,
        heartbeat_ms: int = 5000,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        check_every: float = 0.5,
        prefetch: int = 100,
        ack_after_callback: bool = True,
    ) -> None:
        if not topics:
            raise ValueError("a feed needs at least one topic")
        self.name = None if name is None else check_name(name, "feed name")
        self.topics = list(topics)
        self.on_message = on_message
        self.on_connected = on_connected
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.check_every = check_every
        self.ack_after_callback = ack_after_callback
        self.subscriptions = [self._subscription(i, t, selector, prefetch) for i, t in enumerate(self.topics)]
        self.conn = Connection(
            broker,
            role=role,
            subscriptions=self.subscriptions,
            on_message=self._deliver,
            heartbeat_ms=heartbeat_ms,
            client_id=self.name,
        )
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        #: Connections made so far (1 after the first connect; more after reconnects).
        self.connections = 0
        #: The last reason the feed could not connect ("" once connected).
        self.last_error = ""

    def _subscription(self, i: int, topic: str, selector: str | None, prefetch: int) -> Subscription:
        headers = {"activemq.prefetchSize": str(prefetch)}
        if selector:
            headers["selector"] = selector
        if self.name is not None:
            headers["activemq.subscriptionName"] = _physical(topic)
        return Subscription(topic, id=f"feed-{i}", ack="client-individual", headers=headers)

    # -- messages ------------------------------------------------------------------------------
    def _deliver(self, message: Message) -> None:
        if self._stopping.is_set():
            return  # a closing connection cannot ack it any more: it comes back to the next one
        try:
            self.on_message(message)
        except Exception as exc:  # never into stomp.py's thread: the message comes back later
            log.warning("feed %s: a message could not be handled (%s: %.200s)", self.name, type(exc).__name__, exc)
            return
        if self.ack_after_callback:
            self.ack(message)

    def ack(self, message: Message) -> None:
        """Acknowledge ``message``; a message of an earlier connection is skipped (it comes back)."""
        try:
            self.conn.ack(message)
        except BrokerUnavailable as exc:
            log.debug("feed %s: ack skipped: %s", self.name, exc.problem)

    # -- the connection ------------------------------------------------------------------------
    def connect(self) -> None:
        """One connect now (no retry), for callers that want the first failure as an error.

        :class:`FeedInUse` if another connection holds the name; otherwise
        :class:`~inlet.messaging.BrokerUnavailable`. ``on_connected`` runs on success.
        """
        try:
            self.conn.connect()
        except BrokerUnavailable as exc:
            self.last_error = exc.problem
            if "already connected" in exc.broker_error.lower() or "clientid" in exc.broker_error.lower():
                raise FeedInUse(
                    f"feed {self.name!r} is in use by another connection to {self.conn.where}",
                    "stop the other process with this name, or pick another --name",
                ) from None
            raise
        self._after_connect()

    def _after_connect(self) -> None:
        self.connections += 1
        self.last_error = ""
        self._connected.set()
        log.info("feed %s: subscribed to %s (connection %d)", self.name, ", ".join(self.topics), self.connections)
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception as exc:
                log.warning("feed %s: on_connected failed: %s: %.200s", self.name, type(exc).__name__, exc)

    def start(self) -> None:
        """Run the feed on a daemon thread: connect (with backoff), and reconnect after every loss."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"feed-{self.name or 'anon'}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self.reconnect_initial
        while not self._stopping.is_set():
            if not self.conn.is_connected():
                self._connected.clear()
                try:
                    self.connect()
                    delay = self.reconnect_initial
                except BrokerUnavailable as exc:
                    log.warning("feed %s: %s; retrying in %.1f s", self.name, exc.problem, delay)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, self.reconnect_max)
                    continue
                except FeedInUse as exc:
                    log.warning("feed %s: %s; retrying in %.1f s", self.name, exc.problem, delay)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, self.reconnect_max)
                    continue
            self._stopping.wait(self.check_every)
        # The connection stays open for stop() (which closes it) or forget() (which uses it).

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.conn.is_connected()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the feed is connected (True) or ``timeout`` passed (False)."""
        return self._connected.wait(timeout)

    def stop(self) -> None:
        """Disconnect; a durable subscription stays, keeping messages for the next start.

        Messages that reach the closing connection are not handed to ``on_message`` (they could
        not be acknowledged): the broker gives them to the next connection under the name.
        """
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self._connected.clear()
        self.conn.close()

    def forget(self) -> None:
        """Remove the durable subscriptions (and what they kept) from the broker; stops the feed.

        ActiveMQ removes a durable subscription only while no consumer uses it, so this stops
        the feed, then logs in again under the name with no subscription and unsubscribes.
        """
        self.stop()
        if self.name is None:
            return
        bare = Connection(self.conn.broker, role=self.conn.role, client_id=self.name)
        # Our own connection, closed a moment ago, may still hold the name at the broker.
        for delay in (0.2, 0.5, 1.0, 2.0, 4.0, 0.0):
            try:
                bare.connect()
                break
            except BrokerUnavailable as exc:
                if not delay or "already connected" not in exc.broker_error.lower():
                    raise
                self._stopping.wait(delay)
        try:
            for sub in self.subscriptions:
                bare.unsubscribe(sub)
        finally:
            bare.close()

    def __enter__(self) -> DurableFeed:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
