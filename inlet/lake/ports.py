"""Loopback port checks, done before a start so that a clash is named instead of crashing later."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import psutil

from inlet.lake.errors import LakeError

HOST = "127.0.0.1"


def port_owner(port: int) -> str:
    """Describe who listens on ``port``, as far as this user may see."""
    with contextlib.suppress(psutil.Error, PermissionError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({proc.name()})"
    return "another process"


def is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT looks busy although a server could bind it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_free(port: int, service: str, setting: str) -> None:
    """Raise a :class:`LakeError` naming the owner and the setting to change if ``port`` is taken."""
    if not is_free(port):
        raise LakeError(
            f"{service}: port {port} on {HOST} is already in use by {port_owner(port)}",
            f"stop that process, or choose another port with {setting}",
        )


def answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    """A port the kernel says is free now (for tests that need a private one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
