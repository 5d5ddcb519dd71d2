"""Every command the deployment runs names a real inlet subcommand, option, module or Rucio daemon."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from inlet.cli.main import app
from inlet.lake.services.daemons import DAEMONS, FLOW_DAEMONS
from tests.unit.docker.deployment import DOCKER, built_services, environment, exec_form, read_dockerfile, services

#: Programs that are not inlet's (a plain interpreter, probes of the stock images).
OTHER_PROGRAMS = {"python", "python3", "pgrep", "tini", "sh", "bash", "pg_isready", "healthcheck.sh", "mc", "redis-cli"}
SCRIPTS = {"inlet-bootstrap": DOCKER / "inlet" / "bootstrap.sh", "inlet-entrypoint": DOCKER / "inlet" / "entrypoint.sh"}


def check_inlet_argv(argv: list[str]) -> Any:
    """Walk `inlet ...` through the Typer app as its parser would; return the command it runs.

    Typer ships its own copy of click, so commands and options are recognised by what they have
    (``commands``, ``opts``), not by click's classes."""
    assert argv[0] == "inlet"
    cmd: Any = typer.main.get_command(app)
    args = argv[1:]
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--help":  # click adds it to every command, outside params
            return cmd
        if tok.startswith("-"):
            opt = tok.split("=", 1)[0]
            options = [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]
            param = next((p for p in options if opt in [*p.opts, *p.secondary_opts]), None)
            assert param is not None, f"{' '.join(argv)}: {cmd.name} has no option {opt}"
            if param.is_eager and param.is_flag:  # --version: answers and exits
                return cmd
            if not (param.is_flag or param.count) and "=" not in tok:
                i += 1  # its value
        elif getattr(cmd, "commands", None) is not None:
            sub = cmd.commands.get(tok)
            assert sub is not None, f"{' '.join(argv)}: {cmd.name} has no subcommand {tok}"
            cmd = sub
        i += 1
    assert getattr(cmd, "commands", None) is None, f"{' '.join(argv)} stops at the group {cmd.name}"
    return cmd


def _module_has_main_guard(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    tree = ast.parse(Path(spec.origin).read_text())
    return any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)


def _celery_app_defined(module: str) -> bool:
    """`celery -A module` finds module.app (or module.celery): defined, or served by __getattr__."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    tree = ast.parse(Path(spec.origin).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in ("app", "celery") for t in targets):
                return True
        getattr_serves_app = (
            isinstance(node, ast.FunctionDef)
            and node.name == "__getattr__"
            and any(isinstance(c, ast.Constant) and c.value == "app" for c in ast.walk(node))
        )
        if getattr_serves_app:
            return True
    return False


def check_argv(argv: list[str]) -> None:
    if argv[0] == "inlet":
        check_inlet_argv(argv)
    elif argv[0] == "celery":
        module = argv[argv.index("-A") + 1]
        assert _celery_app_defined(module), f"celery -A {module}: no Celery app there"
        assert "worker" in argv or "inspect" in argv, argv
    elif argv[:2] == ["python", "-m"]:
        assert _module_has_main_guard(argv[2]), f"python -m {argv[2]}: not runnable as a module"
    elif argv[0] in SCRIPTS:
        check_script(SCRIPTS[argv[0]])
    elif Path(argv[0]).name in OTHER_PROGRAMS:
        pass
    else:
        raise AssertionError(f"unknown program in {argv}")


def _python_snippets(text: str) -> list[str]:
    heredocs = re.findall(r"python - <<'EOF'\n(.*?)\nEOF", text, re.DOTALL)
    inline = re.findall(r"python -c '(.*?)'", text, re.DOTALL)
    return heredocs + inline


def check_script(path: Path) -> None:
    """Commands of a shell script: `inlet ...`, `python -m ...`, and the imports of its Python."""
    text = path.read_text()
    for line in text.splitlines():
        line = line.strip().lstrip("|").strip()
        if line.startswith("inlet "):
            check_inlet_argv(shlex.split(line))
        for module in re.findall(r"python -m ([\w.]+)", line):
            assert _module_has_main_guard(module), f"{path.name}: python -m {module}"
    for snippet in _python_snippets(text):
        for node in ast.walk(ast.parse(snippet)):
            if isinstance(node, ast.ImportFrom) and node.module:
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(mod, alias.name), f"{path.name}: {node.module} has no {alias.name}"


def _compose_argv(command: object) -> list[str]:
    return [str(c) for c in command] if isinstance(command, list) else shlex.split(str(command))


@pytest.mark.parametrize("name", sorted(n for n in built_services() if "command" in services()[n]))
def test_compose_commands_reference_real_commands(name: str) -> None:
    check_argv(_compose_argv(services()[name]["command"]))


@pytest.mark.parametrize("name", sorted(built_services()))
def test_image_commands_and_health_checks_reference_real_commands(name: str) -> None:
    df, target = built_services()[name]
    for st in df.chain(target):
        for rest in st.all("CMD"):
            argv = exec_form(rest)
            assert argv is not None, f"{df.path}: CMD in shell form"
            if argv[0] in ("server", "daemon"):  # arguments of the Rucio images' entrypoint
                continue
            check_argv(argv)
        for rest in st.all("HEALTHCHECK"):
            probe = rest.split(" CMD ", 1)[1] if " CMD " in rest else rest.removeprefix("CMD ")
            argv = exec_form(probe) or shlex.split(probe.split(">")[0])
            check_argv(argv)


def test_the_scripts_run_real_commands() -> None:
    for path in SCRIPTS.values():
        check_script(path)


def test_the_conveyor_runs_what_the_lake_runs(tmp_path: Path) -> None:
    from inlet.config import Settings
    from inlet.lake.services.base import LakePaths
    from inlet.lake.services.conveyor import Conveyor

    argv = _compose_argv(services()["conveyor"]["command"])
    assert check_inlet_argv(argv).name == "conveyor"
    lake = Conveyor(Settings(), LakePaths(tmp_path)).argv()
    # Same subcommand and options; the values (pass sleeps) are the deployment's own.
    assert [a for a in argv[1:] if not _number(a)] == [a for a in lake[1:] if not _number(a)]


def _number(arg: str) -> bool:
    try:
        float(arg)
    except ValueError:
        return False
    return True


def _without_sleep(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--sleep-time":
            skip = True
        else:
            out.append(a)
    return out


def test_the_rucio_daemons_are_the_lakes_with_the_same_arguments() -> None:
    daemons = {
        environment(s)["RUCIO_DAEMON"]: (n, s) for n, s in services().items() if "RUCIO_DAEMON" in environment(s)
    }
    default = {d: v for d, v in daemons.items() if not v[1].get("profiles")}
    assert sorted(default) == sorted(d for d in DAEMONS if d not in FLOW_DAEMONS)
    for daemon, (_, svc) in default.items():
        args = shlex.split(environment(svc)["RUCIO_DAEMON_ARGS"])
        # Every daemon sleeps a whole number of seconds between passes (Rucio's scripts take ints);
        # the lake's other arguments (chunk sizes...) are passed as the lake passes them.
        assert args[args.index("--sleep-time") + 1].isdigit(), daemon
        lake = _without_sleep(DAEMONS[daemon])
        ours = _without_sleep(args)
        assert all(" ".join(lake[i : i + 2]) in " ".join(ours) for i in range(0, len(lake), 2)), (daemon, args, lake)
    for daemon in daemons:
        assert (Path(sys.prefix) / "bin" / f"rucio-{daemon}").is_file(), f"Rucio has no daemon rucio-{daemon}"


def test_the_fts_profile_runs_rucios_own_conveyor_daemons() -> None:
    fts = {environment(s)["RUCIO_DAEMON"] for s in services().values() if s.get("profiles") == ["fts"]}
    assert fts == {"conveyor-submitter", "conveyor-poller", "conveyor-finisher"}


def test_the_inlet_image_runs_the_services_the_issue_names() -> None:
    df = read_dockerfile(DOCKER / "inlet" / "Dockerfile")
    cmds = {st.name: exec_form(df.effective(st.name, "CMD") or "") for st in df.stages}
    assert cmds["uploader"] is not None and cmds["uploader"][:4] == ["celery", "-A", "inlet.uploader", "worker"]
    assert cmds["watcher"] is not None and check_inlet_argv(cmds["watcher"]).name == "watch"
    assert cmds["listener"] is not None and check_inlet_argv(cmds["listener"]).name == "listen"
    assert cmds["reco"] is not None and cmds["reco"][:4] == ["celery", "-A", "inlet.listener.reco_task", "worker"]
    assert cmds["conveyor"] is not None and check_inlet_argv(cmds["conveyor"]).name == "conveyor"


def test_the_walker_rejects_what_the_cli_does_not_have() -> None:
    with pytest.raises(AssertionError, match="no subcommand"):
        check_inlet_argv(["inlet", "lake", "explode"])
    with pytest.raises(AssertionError, match="no option"):
        check_inlet_argv(["inlet", "listen", "--no-such-option"])
    with pytest.raises(AssertionError, match="stops at the group"):
        check_inlet_argv(["inlet", "daemon"])


def test_the_flow_daemons_run_as_the_lake_runs_them() -> None:
    for daemon in FLOW_DAEMONS:
        svc = services()[daemon]
        argv = svc["command"]
        assert argv[:3] == ["inlet", "daemon", daemon], argv
        assert check_inlet_argv(argv).name == daemon
        assert "--sleep" in argv
        assert "RUCIO_DAEMON" not in environment(svc)
    evaluator = services()["judge-evaluator"]["command"]
    assert "--max-pause" in evaluator


def test_the_flow_daemons_are_woken_by_the_triggers_the_deployment_installs() -> None:
    from inlet.config import Settings
    from inlet.lake.services.daemons import wake_args

    lake = [a for a in wake_args(Settings()) if not _number(a)]
    assert lake, "the lake wakes its flow daemons ([lake] flow_wake)"
    for daemon in (*FLOW_DAEMONS, "conveyor"):
        argv = services()[daemon]["command"]
        assert [a for a in argv if a in lake] == lake, daemon
    # rucio-init (the one service with Rucio's database login) runs the bootstrap's Rucio step,
    # which installs the triggers with the lake's own function on rucio.cfg's [database] default.
    assert services()["rucio-init"]["command"] == ["inlet-bootstrap", "rucio"]
    script = SCRIPTS["inlet-bootstrap"].read_text()
    rucio_step = script[script.index('if [ "${1:-}" = "rucio" ]') : script.index("\nfi\n")]
    assert "python -m inlet.lake.rucio_bootstrap" in rucio_step
    assert 'install_wake_triggers(config_get("database", "default"))' in rucio_step
