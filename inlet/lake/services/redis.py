"""Redis, Celery's broker: a private instance with append-only persistence, so queued uploads
survive a restart of the lake.

Upload tasks name files the workers read, so whoever can write to this Redis can ask for
files: it requires the password in ``[redis] url`` (``redis://:PASSWORD@host:port/db``). The
password goes into ``conf/redis.conf``, mode 0600, which the server reads at start, never onto
its command line, which ``ps`` shows to every local user.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlparse

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, require_executable


def redis_password(url: str) -> str | None:
    """The password in a redis:// URL (percent-decoded, as redis-py reads it), None without one."""
    parsed = urlparse(url)
    return unquote(parsed.password) if parsed.password else None


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for status lines and logs)."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    user = parsed.username or ""
    host = parsed.hostname or ""
    port = f":{parsed.port}" if parsed.port else ""
    return parsed._replace(netloc=f"{user}:***@{host}{port}").geturl()


def _quoted(value: str) -> str:
    """A redis.conf string argument: double-quoted, with backslash escapes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for p in parts:
        b = p.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Redis(Service):
    name = "redis"
    port_setting = "[redis] url / INLET_REDIS__URL"

    @property
    def port(self) -> int:
        port = urlparse(self.settings.redis.url).port
        if port is None:
            raise LakeError(
                f"redis: [redis] url {masked_url(self.settings.redis.url)!r} has no port",
                "give the embedded Redis an explicit port, e.g. redis://:PASSWORD@127.0.0.1:26379/0",
            )
        return port

    @property
    def endpoint(self) -> str:
        return masked_url(self.settings.redis.url)

    @property
    def password(self) -> str:
        url = self.settings.redis.url
        password = redis_password(url)
        if not password:
            raise LakeError(
                f"redis: [redis] url {url!r} has no password; the lake's Redis carries upload tasks and requires one",
                "put one in the URL: redis://:PASSWORD@127.0.0.1:26379/0 (INLET_REDIS__URL)",
            )
        user = urlparse(url).username
        if user not in (None, "", "default"):
            raise LakeError(
                f"redis: [redis] url names user {user!r}; the lake's Redis has only the default user",
                "drop the user name: redis://:PASSWORD@host:port/db",
            )
        return password

    @property
    def conf_file(self) -> Path:
        return self.paths.conf / "redis.conf"

    def write_conf(self) -> Path:
        """The server's configuration, password included, readable by its owner only."""
        data = self.paths.data / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Written by `inlet lake` at every start; edit [redis] url instead.",
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {_quoted(str(data))}",
            "appendonly yes",
            'save ""',
            "daemonize no",
            'logfile ""',
            "protected-mode yes",
            f"requirepass {_quoted(self.password)}",
        ]
        tmp = self.conf_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)  # an older file of the same name may have had another mode
            fh.write("\n".join(lines) + "\n")
        tmp.replace(self.conf_file)
        return self.conf_file

    def argv(self) -> list[str]:
        exe = require_executable(
            self.settings.lake.redis_server, self.name, "run scripts/setup.sh (apt-get install redis-server)"
        )
        return [exe, str(self.write_conf())]

    def ready(self) -> bool:
        try:
            # No password in the URL: a plain PING, which a Redis requiring one answers with NOAUTH (not ready).
            password = redis_password(self.settings.redis.url)
            hello = _resp("AUTH", password) if password else b""
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(hello + _resp("PING"))
                got, lines = b"", 2 if password else 1
                while got.count(b"\r\n") < lines:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    got += chunk
                return got.startswith(b"+OK\r\n+PONG" if password else b"+PONG")
        except OSError:
            return False
