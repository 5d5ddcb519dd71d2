"""Redis, Celery's broker: a private instance with append-only persistence, so queued uploads
survive a restart of the lake."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, require_executable


class Redis(Service):
    name = "redis"
    port_setting = "[redis] url / INLET_REDIS__URL"

    @property
    def port(self) -> int:
        port = urlparse(self.settings.redis.url).port
        if port is None:
            raise LakeError(
                f"redis: [redis] url {self.settings.redis.url!r} has no port",
                "give the embedded Redis an explicit port, e.g. redis://127.0.0.1:26379/0",
            )
        return port

    @property
    def endpoint(self) -> str:
        return self.settings.redis.url

    def argv(self) -> list[str]:
        exe = require_executable(
            self.settings.lake.redis_server, self.name, "run scripts/setup.sh (apt-get install redis-server)"
        )
        data = self.paths.data / "redis"
        data.mkdir(parents=True, exist_ok=True)
        return [
            exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(data),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--logfile", "",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
