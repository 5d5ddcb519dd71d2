"""Logging in to the STOMP broker, with a failure that says which of two things went wrong.

stomp.py raises the same ``ConnectFailedException`` whether the broker is not there or it
answered the CONNECT with an ERROR frame (ActiveMQ's "User name [x] or password is
invalid"). The operator's fix differs completely (start the broker / fix the password), so
:func:`login` listens for that ERROR frame while connecting and raises
:class:`BrokerLoginRefused` or :class:`BrokerUnreachable`, each with a one-line message.

A module of its own (not in ``inlet.listener``) because the uploader, the listener and the
rehearsal all log in, and the uploader and the listener never import each other.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import stomp
from stomp.exception import StompException

from inlet.errors import InletError


class BrokerLoginError(InletError, ConnectionError):
    """The broker could not be logged in to; the message is one line with the fix.

    An InletError for the CLI's one handler, and a ConnectionError for the services' reconnect
    loops, which retry on connection errors."""


class BrokerLoginRefused(BrokerLoginError):
    """The broker answered and refused the credentials."""


class BrokerUnreachable(BrokerLoginError):
    """No broker answered at that address."""


class _ErrorFrames(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.seen = threading.Event()

    def on_error(self, frame: Any) -> None:
        self.messages.append(str(frame.headers.get("message", "")).strip())
        self.seen.set()


def login(
    conn: stomp.Connection12,
    host: str,
    port: int,
    username: str,
    password: str,
    what: str = "[broker] username/password",
) -> None:
    """``conn.connect(username, password, wait=True)``, failing with a :class:`BrokerLoginError`.

    ``what`` names the settings that hold these credentials, for the message (e.g.
    ``[broker] reader_username/reader_password``).
    """
    errors = _ErrorFrames()
    conn.set_listener("inlet-login", errors)
    # stomp.py logs each failed attempt itself; the one line raised below says it all.
    stomp_log = logging.getLogger("stomp.py")
    level = stomp_log.level
    stomp_log.setLevel(logging.ERROR)
    try:
        conn.connect(username, password, wait=True)
    except (StompException, OSError) as exc:
        # The ERROR frame arrives on the receiver thread, just before the socket closes.
        errors.seen.wait(0.5)
        if errors.messages:
            raise BrokerLoginRefused(
                f"the broker at {host}:{port} refused the login of {username!r}: {errors.messages[0][:200]}",
                f"check {what}",
            ) from None
        detail = str(exc) or "no STOMP answer"
        raise BrokerUnreachable(
            f"cannot reach the broker at {host}:{port} ({detail})",
            "start it (`inlet lake up`; `inlet lake status` shows it) or correct [broker] host/stomp_port",
        ) from None
    finally:
        stomp_log.setLevel(level)
        conn.remove_listener("inlet-login")
    if not conn.is_connected():
        raise BrokerLoginRefused(f"the broker at {host}:{port} refused the login of {username!r}", f"check {what}")
