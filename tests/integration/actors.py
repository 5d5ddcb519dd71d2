"""Rucio accounts driven through the standard Rucio client, one child process per account.

Shared by the policy tests (test_policies_server, test_policies_embargo, test_hostile_embargo):
Rucio's client reads its configuration and token file once per process, so each account gets a
long-lived child that takes one JSON batch of calls per line and answers one JSON line.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inlet.lake.lake import Lake

# A long-lived child per account: one JSON batch of calls per line in, one JSON line out.
_ACTOR = r"""
import json, sys
from rucio.client import Client
client = Client()
for line in sys.stdin:
    out = []
    for method, args, kwargs in json.loads(line):
        try:
            res = getattr(client, method)(*args, **kwargs)
            if res is not None and not isinstance(res, (str, bytes, dict, list, bool, int, float)):
                res = list(res)
            out.append({"ok": True, "result": res})
        except Exception as exc:
            out.append({"ok": False, "error": type(exc).__name__, "message": str(exc)})
    print("@@RESULT@@" + json.dumps(out, default=str), flush=True)
"""

PASSWORD = "policy-test-secret"
FUTURE = "2099-01-01"
PAST = "2020-01-01T00:00:00Z"


@dataclass
class Outcome:
    ok: bool
    result: Any = None
    error: str = ""
    message: str = ""

    def denied(self, *fragments: str) -> bool:
        """AccessDenied whose message carries every fragment (the reason and the way out)."""
        return self.error == "AccessDenied" and all(f in self.message for f in fragments)


class Actor:
    """One Rucio account, driven through the standard client in its own process."""

    def __init__(self, account: str, lake: Lake, workdir: Path, username: str, password: str) -> None:
        self.account = account
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(lake.rucio_client_env()["RUCIO_CONFIG"])
        cfg["client"]["account"] = account
        cfg["client"]["username"] = username
        cfg["client"]["password"] = password
        cfg["client"]["auth_token_file_path"] = str(workdir / f"token-{account}" / f"auth_token_{account}")
        (workdir / f"token-{account}").mkdir(parents=True, exist_ok=True)
        self.cfg_path = workdir / f"rucio-{account}.cfg"
        with self.cfg_path.open("w") as fh:
            cfg.write(fh)
        self.env = {**os.environ, "RUCIO_CONFIG": str(self.cfg_path), "TMPDIR": str(workdir)}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the child (importing Rucio and logging in take seconds; children start in parallel)."""
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _ACTOR],
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(self.cfg_path.parent / f"actor-{self.account}.log").open("w"),
                text=True,
            )

    def run(self, *calls: tuple[str, list[Any], dict[str, Any]]) -> list[Outcome]:
        self.start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(calls) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("@@RESULT@@"):
                return [Outcome(**o) for o in json.loads(line[len("@@RESULT@@") :])]
        log = (self.cfg_path.parent / f"actor-{self.account}.log").read_text()
        raise AssertionError(f"actor {self.account} died:\n{log[-3000:]}")

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Outcome:
        return self.run((method, list(args), kwargs))[0]


def expect_ok(outcomes: list[Outcome]) -> list[Outcome]:
    bad = [o for o in outcomes if not o.ok]
    assert not bad, bad
    return outcomes


def posix_protocol(root: Path | str, impl: str = "rucio.rse.protocols.posix.Default") -> dict[str, Any]:
    """A file:// protocol at ``root`` that reads, writes, deletes and takes part in transfers."""
    rw = {"read": 1, "write": 1, "delete": 1}
    return {
        "scheme": "file",
        "hostname": "localhost",
        "port": 0,
        "prefix": f"{root}/",
        "impl": impl,
        "domains": {"lan": rw, "wan": {**rw, "third_party_copy_read": 1, "third_party_copy_write": 1}},
    }


def fake_file(scope: str, name: str) -> dict[str, Any]:
    return {"scope": scope, "name": name, "bytes": 1000, "adler32": "0a0b0c0d"}
