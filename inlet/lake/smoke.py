"""A timed upload/download round trip through the standard `rucio` CLI.

It uses the CLI a physicist would use, not inlet's own code, so that it proves the lake works
for them. `rucio upload` exits 0 even when the upload failed, so success is judged by the
bytes that come back, never by the exit code alone.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rucio_inlet.checksums import file_adler32

from inlet.lake.errors import LakeError
from inlet.lake.lake import Lake
from inlet.lake.services.base import venv_bin


@dataclass
class SmokeResult:
    did: str
    adler32: str
    ok: bool
    timings: dict[str, float] = field(default_factory=dict)


def rucio_cli(lake: Lake, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **lake.rucio_client_env()}
    res = subprocess.run(
        [venv_bin("rucio"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if res.returncode != 0:
        raise LakeError(
            f"`rucio {' '.join(args)}` failed ({res.returncode}):\n{(res.stderr or res.stdout)[-1500:]}",
            "see `inlet lake status` and the rucio log under the lake's logs/",
        )
    return res


def run_smoke(lake: Lake, size: int, scope: str = "test", rse: str = "SITE_A_DISK") -> SmokeResult:
    with tempfile.TemporaryDirectory(dir=lake.paths.tmp) as tmp:
        work = Path(tmp)
        name = f"smoke-{uuid.uuid4().hex[:12]}.dat"
        src = work / name
        src.write_bytes(os.urandom(size))
        want = file_adler32(src)
        timings: dict[str, float] = {}
        t = time.monotonic()
        rucio_cli(lake, "upload", "--rse", rse, "--scope", scope, str(src))
        timings["rucio upload"] = time.monotonic() - t
        t = time.monotonic()
        rucio_cli(lake, "download", "--dir", str(work / "down"), f"{scope}:{name}")
        timings["rucio download"] = time.monotonic() - t
        got_path = work / "down" / scope / name
        got = file_adler32(got_path) if got_path.exists() else "missing"
        return SmokeResult(did=f"{scope}:{name}", adler32=got, ok=got == want, timings=timings)
