"""No tracebacks: every inlet (sub)command answers `-h`, and given bad input, a bad configuration
or a service that does not answer, prints ONE line saying what is wrong and how to fix it, and
exits non-zero.

The command tree is walked from the Typer app, so a new command fails `test_tables_cover_every_
command` until it has its cases here. Every invocation runs in a clean environment: no INLET_* or
RUCIO_* variable of the developer's shell, a fresh state directory, every service pointed at a
127.0.0.1 port that refuses connections, and `[lake] manage = []`, so that not even a regression
can start a lake. Cases that reach Rucio, Celery or the broker (whose clients keep process-wide
state, or retry for seconds) run as real `inlet` processes, in parallel; the rest run in-process
through Typer's runner, which is what keeps the module fast. Each case is its own test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from inlet.cli.main import app

INLET = str(Path(sys.executable).parent / "inlet")
ROOT: Any = typer.main.get_command(app)


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        yield from walk(sub, (*path, name))


EVERY_COMMAND = [path for path, _ in walk(ROOT)]
LEAVES = [path for path, cmd in walk(ROOT) if getattr(cmd, "commands", None) is None]

#: Arguments with which each command gets as far as loading the configuration. {tmp} is the
#: test's directory. None: the command does not read the configuration.
GOOD_ARGS: dict[tuple[str, ...], list[str] | None] = {
    ("catalog", "revision"): [],
    ("catalog", "upgrade"): [],
    ("config", "doc"): None,
    ("config", "show"): [],
    ("daemon", "conveyor"): ["--once"],
    ("daemon", "hermes"): ["--once"],
    ("daemon", "judge-evaluator"): ["--once"],
    ("embargo", "release"): ["--dry-run"],
    ("events", "dlq", "list"): [],
    ("events", "dlq", "replay"): ["--all"],
    ("events", "dlq", "show"): ["abc"],
    ("events", "publish"): ["run-closed"],
    ("fetch",): ["run=1", "--to", "{tmp}/dest"],
    ("follow",): ["run=1"],
    ("lake", "down"): [],
    ("lake", "env"): [],
    ("lake", "status"): [],
    ("lake", "up"): [],
    ("listen",): [],
    ("reconcile",): [],
    ("rehearse",): ["--no-lake", "--duration", "5"],
    ("runs",): [],
    ("select",): ["run=1"],
    ("smoke",): [],
    ("upload",): ["{tmp}/run000001.mid.gz", "--run", "1", "--no-wait"],
    ("uploader", "release"): ["--once"],
    ("uploader", "status"): [],
    ("watch",): ["{tmp}/daq", "--once"],
    ("web",): ["--port", "{port}"],
}


@dataclass(frozen=True)
class Bad:
    """One bad invocation: its arguments, extra environment, and what its one line must say."""

    args: list[str]
    says: str
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    #: Run as a real `inlet` process (the client libraries it reaches keep process-wide state).
    process: bool = False
    #: The fix is a separate "(fix: ...)" part. False for errors of the listener's and the
    #: uploader's modules, which still carry their advice inside the message.
    fix: bool = True


CATALOG_DOWN = {"INLET_CATALOG__URL": "mysql+pymysql://inlet:s3cret@127.0.0.1:{port}/inlet"}
RUCIO_DOWN = {"INLET_RUCIO__CONFIG": "{tmp}/rucio-closed.cfg"}
REDIS_DOWN = "Redis, the uploader's queue, does not answer"

#: Bad input, or an unreachable / misconfigured service, for every command. {port} is closed.
BAD: dict[tuple[str, ...], list[Bad]] = {
    ("catalog", "revision"): [Bad([], "cannot read the catalogue", CATALOG_DOWN)],
    ("catalog", "upgrade"): [
        Bad([], "cannot migrate the run catalogue", CATALOG_DOWN),
        Bad([], "is not usable", {"INLET_CATALOG__URL": "garbage://x"}),
    ],
    ("config", "doc"): [Bad(["surplus"], "unexpected extra argument")],
    ("config", "show"): [Bad([], "configuration key lake.daemon_sleep", {"INLET_LAKE__DAEMON_SLEEP": "often"})],
    ("daemon", "conveyor"): [Bad(["--once"], "rucio.cfg does not exist")],
    ("daemon", "hermes"): [Bad(["--once"], "rucio.cfg does not exist"), Bad(["--sleep", "0"], "--sleep")],
    ("daemon", "judge-evaluator"): [Bad(["--once"], "rucio.cfg does not exist")],
    ("embargo", "release"): [Bad(["--dry-run"], "Cannot connect to the Rucio server", RUCIO_DOWN, process=True)],
    ("events", "dlq", "list"): [Bad([], "cannot reach the broker at", process=True)],
    ("events", "dlq", "replay"): [Bad([], "nothing to replay")],
    ("events", "dlq", "show"): [Bad(["abc"], "cannot reach the broker at", process=True)],
    ("events", "publish"): [
        Bad(["run-closed"], "cannot reach the broker at", process=True),
        Bad(["run-closed", "--payload", "{nope"], "--payload is not JSON"),
    ],
    ("fetch",): [
        Bad(["run=1", "--to", "/dev/null"], "is not a directory"),
        Bad(["run=1", "--to", ""], "--to is empty"),
        Bad(["run=1e999", "--to", "{tmp}/dest"], "out of range"),
    ],
    ("follow",): [
        # One line, with a caret at the column where the selection goes wrong.
        Bad(["raw: run== and stream=ksl"], "at column 12: raw: run== ^and stream=ksl"),
        Bad([], "no selection given"),
        Bad(["run=1", "--since", "last tuesday"], "--since 'last tuesday' is neither"),
        Bad(["run=1", "--from-start", "--since", "1h"], "--from-start and --since both given"),
        Bad(["run=1", "--since", "2999-01-01"], "is in the future"),
        Bad(["run=1", "--name", "../x"], "follower name '../x' is not allowed"),
        Bad(["run=1", "--exec", "echo {path}"], "there is no local file"),
        Bad(["run=1", "--exec", "echo 'x"], "No closing quotation"),
        Bad(["run=1", "--download", "/dev/null"], "is not a directory"),
        Bad(["--forget"], "--forget needs --name"),
        Bad(["run=1"], "cannot migrate the run catalogue", CATALOG_DOWN),
    ],
    ("lake", "down"): [Bad(["--purge", "now"], "unexpected extra argument")],
    ("lake", "env"): [Bad(["--x"], "No such option")],
    ("lake", "status"): [
        Bad([], "configuration key lake.manage", {"INLET_LAKE__MANAGE": '["warp-drive"]'}),
        Bad([], "(set by INLET_LAKE__MANAGE)", {"INLET_LAKE__MANAGE": "[postgres"}),
    ],
    ("lake", "up"): [Bad([], "not valid TOML", {"INLET_CONFIG": "{tmp}/broken.toml"}, process=True)],
    ("listen",): [Bad([], "is not usable", {"INLET_CATALOG__URL": "garbage://x"})],
    ("reconcile",): [Bad([], "Cannot connect to the Rucio server", RUCIO_DOWN, process=True)],
    ("rehearse",): [
        Bad(["--no-lake", "--duration", "0"], "--duration"),
        Bad(["--no-lake", "--duration", "inf"], "--duration is inf"),
    ],
    ("runs",): [
        Bad(["--since", "last tuesday"], "--since"),
        Bad([], "is not usable", {"INLET_CATALOG__URL": "garbage://x"}),
    ],
    ("select",): [
        Bad(["run = 1e999"], "number 1e999 is out of range", process=True),
        Bad(["run = 1234567890123456789012345"], "is out of range"),
        Bad([" or ".join(["run=1"] * 3000)], "characters long"),
        Bad(["run in (" + ",".join(map(str, range(3000))) + ")"], "more than 500 comparisons"),
        Bad(["(" * 3000 + "run=1" + ")" * 3000], "nested parentheses"),
        Bad(["raw: run=="], "expected a value"),
        Bad(["run=1"], "cannot migrate the run catalogue", CATALOG_DOWN),
    ],
    ("smoke",): [Bad(["--size-kb", "many"], "--size-kb")],
    ("upload",): [
        Bad(["{tmp}/not-a-run-name.bin", "--run", "1"], "the name breaks the naming schema", fix=False),
        Bad(["{tmp}/run000001.mid.gz", "--run", "1", "--no-wait"], REDIS_DOWN, process=True),
    ],
    ("uploader", "release"): [Bad(["--interval", "soon"], "--interval")],
    ("uploader", "status"): [Bad([], REDIS_DOWN, process=True)],
    ("watch",): [
        Bad(["{tmp}/no-such-dir"], "does not exist"),
        Bad(["{tmp}/daq", "--once"], REDIS_DOWN, process=True),
    ],
    # The world's port is bound (never listening): the web server cannot take it.
    ("web",): [Bad(["--port", "{port}"], "cannot listen on 127.0.0.1:", process=True)],
}

BAD_CONFIG = "[lake]\nno_such_key = 1\n"


@dataclass
class Outcome:
    argv: list[str]
    code: int
    stdout: str
    stderr: str


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> Outcome:
    proc = subprocess.run([INLET, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return Outcome(argv, proc.returncode, proc.stdout, proc.stderr)


def _run_here(argv: list[str], env: dict[str, str], cwd: Path) -> Outcome:
    """In this process, with this process's environment and directory restored afterwards
    (commands point RUCIO_CONFIG at the lake's configuration, for instance)."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    runtime = sys.modules.get("inlet.uploader.app_runtime")
    if runtime is not None:
        runtime.settings.cache_clear()  # settings are cached per process
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, argv)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        # What a user would have seen as a traceback.
        trace = "".join(traceback.format_exception(res.exception))
        return Outcome(argv, 1, res.stdout, res.stderr + "\nTraceback (escaped the CLI):\n" + trace)
    return Outcome(argv, res.exit_code, res.stdout, res.stderr)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A directory, a port that refuses connections, and the clean environment around them."""
    tmp = tmp_path_factory.mktemp("cli")
    # Bound but never listening: connections are refused, and no other process can take it.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    (tmp / "daq").mkdir()
    (tmp / "daq" / "run000001.mid.gz").write_bytes(b"x")
    (tmp / "run000001.mid.gz").write_bytes(b"x")
    (tmp / "not-a-run-name.bin").write_bytes(b"x")
    (tmp / "broken.toml").write_text("[lake\nstate_dir = \n")
    (tmp / "unknown-key.toml").write_text(BAD_CONFIG)
    (tmp / "rucio-closed.cfg").write_text(
        f"[client]\nrucio_host = http://127.0.0.1:{port}\nauth_host = http://127.0.0.1:{port}\n"
        "auth_type = userpass\nusername = u\npassword = p\naccount = root\nrequest_retries = 1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INLET_", "RUCIO_"))}
    env.update(
        TMPDIR=str(tmp),
        INLET_LAKE__STATE_DIR=str(tmp / "state"),
        INLET_LAKE__MANAGE="[]",
        INLET_RUCIO__HOST=f"http://127.0.0.1:{port}",
        INLET_BROKER__STOMP_PORT=str(port),
        INLET_REDIS__URL=f"redis://127.0.0.1:{port}/0",
        INLET_S3__ENDPOINT=f"http://127.0.0.1:{port}",
        INLET_LAKE__POSTGRES_PORT=str(port),
        INLET_LAKE__MARIADB_PORT=str(port),
    )
    yield {"tmp": tmp, "port": port, "env": env}
    closed.close()


def _fill(text: str, world: dict[str, Any]) -> str:
    return text.replace("{tmp}", str(world["tmp"])).replace("{port}", str(world["port"]))


def _case_ids() -> list[tuple[tuple[str, ...], int]]:
    return [(path, i) for path, cases in sorted(BAD.items()) for i in range(len(cases))]


@pytest.fixture(scope="module")
def outcomes(world: dict[str, Any]) -> dict[Any, Outcome]:
    """Every invocation of this module, run once: processes four at a time, the rest in-process."""
    jobs: dict[Any, tuple[list[str], dict[str, str], bool]] = {}
    for path, i in _case_ids():
        bad = BAD[path][i]
        env = {**world["env"], **{k: _fill(v, world) for k, v in bad.env.items()}}
        jobs[("bad", path, i)] = ([*path, *(_fill(a, world) for a in bad.args)], env, bad.process)
    for path, args in GOOD_ARGS.items():
        if args is not None:
            env = {**world["env"], "INLET_CONFIG": str(world["tmp"] / "unknown-key.toml")}
            jobs[("config", path)] = ([*path, *(_fill(a, world) for a in args)], env, path == ("select",))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            key: pool.submit(_run, argv, env, world["tmp"]) for key, (argv, env, process) in jobs.items() if process
        }
        # CliRunner swaps sys.stdout: in-process cases go one at a time, in this thread.
        done = {key: _run_here(argv, env, world["tmp"]) for key, (argv, env, process) in jobs.items() if not process}
        return {**done, **{key: fut.result() for key, fut in futures.items()}}


def assert_one_line_error(out: Outcome, says: str, code: int = 2, fix: bool = True) -> None:
    shown = f"inlet {' '.join(out.argv)[:200]}\nexit {out.code}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert "Traceback" not in out.stdout + out.stderr, shown
    assert out.code == code, shown
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert lines[0].startswith("inlet: error: "), shown
    assert "(fix: " in lines[0] or not fix, shown
    assert says in lines[0], shown
    assert out.stdout.strip() == "", shown


def test_tables_cover_every_command() -> None:
    assert sorted(GOOD_ARGS) == sorted(LEAVES)
    assert sorted(BAD) == sorted(LEAVES)
    assert len(LEAVES) >= 27  # the walk found the tree (a broken walk would pass vacuously)


@pytest.mark.parametrize("path", EVERY_COMMAND, ids=lambda p: " ".join(p) or "inlet")
def test_dash_h_prints_help(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(app, [*path, "-h"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and "--help" in res.output


@pytest.mark.parametrize(("path", "i"), _case_ids(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_bad_input_is_one_line(outcomes: dict[Any, Outcome], path: tuple[str, ...], i: int) -> None:
    bad = BAD[path][i]
    assert_one_line_error(outcomes[("bad", path, i)], bad.says, bad.code, bad.fix)


@pytest.mark.parametrize("path", [p for p, a in GOOD_ARGS.items() if a is not None], ids=" ".join)
def test_unknown_config_key_is_one_line(outcomes: dict[Any, Outcome], path: tuple[str, ...]) -> None:
    out = outcomes[("config", path)]
    assert_one_line_error(out, "unknown configuration key lake.no_such_key")
    assert "unknown-key.toml" in out.stderr  # names the file to fix


def test_secrets_in_urls_are_masked(outcomes: dict[Any, Outcome]) -> None:
    out = outcomes[("bad", ("catalog", "upgrade"), 0)]
    assert "s3cret" not in out.stderr and "inlet:***@" in out.stderr


#: Commands that read state, with the arguments that reach their output. Every one takes --json.
#: None: its output needs a running service; tests/integration/test_cli_json.py runs it on the lake.
READS: dict[tuple[str, ...], list[str] | None] = {
    ("catalog", "revision"): [],
    ("config", "show"): [],
    ("embargo", "release"): None,
    ("events", "dlq", "list"): None,
    ("events", "dlq", "show"): None,
    ("lake", "env"): [],
    ("lake", "status"): [],
    ("reconcile",): None,
    ("runs",): [],
    ("select",): ["run=1"],
    ("uploader", "status"): None,
}
#: Commands that act (start, stop, move, publish, print a document) rather than report state.
ACTS = {
    ("catalog", "upgrade"),
    ("config", "doc"),
    ("daemon", "conveyor"),
    ("daemon", "hermes"),
    ("daemon", "judge-evaluator"),
    ("events", "dlq", "replay"),
    ("events", "publish"),
    ("fetch",),
    ("follow",),
    ("lake", "down"),
    ("lake", "up"),
    ("listen",),
    ("rehearse",),
    ("smoke",),
    ("upload",),
    ("uploader", "release"),
    ("watch",),
    ("web",),
}


def test_every_command_either_reads_or_acts() -> None:
    """A new command must be put in READS (and so take --json) or in ACTS."""
    assert sorted(set(READS) | ACTS) == sorted(LEAVES)
    assert not set(READS) & ACTS


@pytest.mark.parametrize("path", sorted(READS), ids=" ".join)
def test_read_command_takes_json(path: tuple[str, ...]) -> None:
    cmd: Any = ROOT
    for name in path:
        cmd = cmd.commands[name]
    assert any("--json" in p.opts for p in cmd.params), f"inlet {' '.join(path)} has no --json"


@pytest.mark.parametrize("path", [p for p, a in sorted(READS.items()) if a is not None], ids=" ".join)
def test_read_command_prints_json(world: dict[str, Any], path: tuple[str, ...]) -> None:
    """Without any service (a fresh state directory, every port closed), stdout is one JSON value."""
    out = _run_here([*path, *(READS[path] or []), "--json"], world["env"], world["tmp"])
    assert "Traceback" not in out.stderr, out.stderr
    assert out.code in (0, 1), out  # 1: the state read is not all well (a lake that is down)
    json.loads(out.stdout)
