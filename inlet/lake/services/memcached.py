"""memcached, Rucio's cache: a private instance on its own port, named in rucio.cfg ``[cache] url``.

Rucio turns its cache regions on only if a memcached answers at ``[cache] url`` when
``rucio.common.cache`` is imported; otherwise every RSE, attribute, expression and account
lookup is a database query. It therefore starts before the Rucio server and its daemons. It
holds nothing that cannot be recomputed: no persistence, no password (loopback only).
"""

from __future__ import annotations

import os
import socket

from inlet.lake.services.base import Service, require_executable


def memcached_stats(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The server's ``stats`` (name -> value); raises OSError if it does not answer."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"stats\r\n")
        got = b""
        while not got.endswith(b"END\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("memcached closed the connection")
            got += chunk
    stats = {}
    for line in got.decode().splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def memcached_flush(port: int, host: str = "127.0.0.1") -> None:
    """Forget every cached value; raises OSError if the server does not confirm."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"flush_all\r\n")
        if not sock.recv(64).startswith(b"OK"):
            raise OSError("memcached did not confirm flush_all")


class Memcached(Service):
    name = "memcached"
    port_setting = "[lake] memcached_port / INLET_LAKE__MEMCACHED_PORT"

    @property
    def port(self) -> int:
        return self.settings.lake.memcached_port

    @property
    def url(self) -> str:
        """Rucio's ``[cache] url`` form (host:port, no scheme)."""
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        lake = self.settings.lake
        exe = require_executable(lake.memcached, self.name, "run scripts/setup.sh (apt-get install memcached)")
        argv = [exe, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", str(lake.memcached_mb)]
        if os.geteuid() == 0:
            # memcached refuses to run as root; it drops to this user itself.
            argv += ["-u", "nobody"]
        return argv

    def ready(self) -> bool:
        try:
            return "pid" in memcached_stats(self.port)
        except OSError:
            return False
