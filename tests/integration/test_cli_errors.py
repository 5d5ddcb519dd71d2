"""No tracebacks against the real lake: services that answer but refuse inlet's credentials,
or that are not the service inlet was told they are.

Each case runs `inlet` as a process with one setting made wrong, and must end with exactly
one line on stderr, `inlet: error: <problem> (fix: <fix>)`, exit code 2, and no traceback.
(Services that do not answer at all are covered without a lake, in
tests/unit/cli/test_no_tracebacks.py.)
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from inlet.lake.lake import Lake
from inlet.lake.services.mariadb import MariaDB

INLET = str(Path(sys.executable).parent / "inlet")
WRONG = "wrong-password"


def _rucio_cfg(lake: Lake, path: Path, **client: str) -> Path:
    """The lake's rucio.cfg with some [client] options changed, and no cached token to fall back on."""
    cfg = configparser.RawConfigParser()
    cfg.read(lake.rucio_client_env()["RUCIO_CONFIG"])
    cfg.remove_option("client", "auth_token_file_path")
    for key, value in client.items():
        cfg.set("client", key, value)
    with path.open("w") as out:
        cfg.write(out)
    return path


@pytest.fixture(scope="module")
def outcomes(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("cli-errors")
    tokens = tmp / "tokens"  # a fresh TMPDIR: no Rucio token from an earlier login
    tokens.mkdir()
    s = lake.settings
    redis = urlsplit(s.redis.url)
    mariadb_port = MariaDB(s, lake.paths).port
    s3_host = urlsplit(s.s3.endpoint).netloc
    wrong_rucio = _rucio_cfg(lake, tmp / "wrong-password.cfg", password=WRONG)
    not_rucio = _rucio_cfg(lake, tmp / "not-rucio.cfg", rucio_host=f"http://{s3_host}", auth_host=f"http://{s3_host}")
    base = {k: v for k, v in os.environ.items() if k != "RUCIO_CONFIG"}
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "broker password, publish": (["events", "publish", "run-closed"], {"INLET_BROKER__PASSWORD": WRONG}),
        "broker password, dlq list": (["events", "dlq", "list"], {"INLET_BROKER__PASSWORD": WRONG}),
        "redis password": (
            ["uploader", "status"],
            {"INLET_REDIS__URL": f"redis://:{WRONG}@{redis.hostname}:{redis.port}/0"},
        ),
        "mariadb password, upgrade": (
            ["catalog", "upgrade"],
            {"INLET_CATALOG__URL": f"mysql+pymysql://inlet:{WRONG}@127.0.0.1:{mariadb_port}/inlet"},
        ),
        "mariadb password, select": (
            ["select", "raw: run = 1"],
            {"INLET_CATALOG__URL": f"mysql+pymysql://inlet:{WRONG}@127.0.0.1:{mariadb_port}/inlet"},
        ),
        "rucio password, reconcile": (
            ["reconcile"],
            {"INLET_RUCIO__CONFIG": str(wrong_rucio), "TMPDIR": str(tokens)},
        ),
        "rucio password, embargo release": (
            ["embargo", "release", "--dry-run"],
            {"INLET_RUCIO__CONFIG": str(wrong_rucio), "TMPDIR": str(tokens)},
        ),
        "rucio host is the S3 endpoint": (
            ["embargo", "release", "--dry-run"],
            {"INLET_RUCIO__CONFIG": str(not_rucio), "TMPDIR": str(tokens)},
        ),
    }

    def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [INLET, *argv], env={**base, **env}, cwd=tmp, capture_output=True, text=True, timeout=120, check=False
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, argv, env) for name, (argv, env) in cases.items()}
        return {name: fut.result() for name, fut in futures.items()}


EXPECTED = {
    "broker password, publish": "username/password",
    "broker password, dlq list": "broker",
    "redis password": "Redis",
    "mariadb password, upgrade": "Access denied",
    "mariadb password, select": "Access denied",
    "rucio password, reconcile": "Cannot authenticate",
    "rucio password, embargo release": "Cannot authenticate",
    "rucio host is the S3 endpoint": "Rucio refused",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_wrong_setting_is_one_line(outcomes: dict[str, subprocess.CompletedProcess[str]], case: str) -> None:
    res = outcomes[case]
    shown = f"{case}: exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr, shown
    assert res.returncode == 2, shown
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("inlet: error: "), shown
    assert EXPECTED[case] in lines[0], shown
    assert WRONG not in res.stderr, shown  # a password in a URL is masked
