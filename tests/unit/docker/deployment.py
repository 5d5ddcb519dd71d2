"""Readers of docker/: the compose file as Compose interpolates it, and the Dockerfiles by stage.

There is no Docker engine in the test environment, so these tests read the files the way
Compose and BuildKit would, for the parts that decide whether a deployment can work.
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a literal $.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    """docker/.env.example as Compose reads a .env file (KEY=VALUE, # comments)."""
    out: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        out[key.strip()] = value.strip()
    return out


def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def variables(text: str) -> list[tuple[str, str | None]]:
    """Every ${VAR...} in text: (name, operator) with operator None, '-', ':-', '?' or ':?'."""
    return [(m.group(1), m.group(2)) for m in _VAR.finditer(text) if m.group(1)]


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in a parsed compose document."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, op, arg = m.group(1), m.group(2), m.group(3) or ""
            have = env.get(name)
            if op in (":-", ":?"):
                have = have or None
            if have is not None:
                return have
            if op and op.endswith("?"):
                raise KeyError(f"{name}: {arg}")
            return arg if op else ""

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


@functools.cache
def compose() -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with docker/.env.example as .env.

    Read once per session: callers must not modify it."""
    data = interpolate(raw_compose(), env_example())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    svcs = compose()["services"]
    assert isinstance(svcs, dict)
    return svcs


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def schema() -> dict[str, Any]:
    data = json.loads(SCHEMA_FILE.read_text())
    assert isinstance(data, dict)
    return data


@dataclass
class Stage:
    name: str | None
    base: str
    #: (instruction upper-cased, rest of the line), continuation lines joined.
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [rest for ins, rest in self.instructions if ins == instruction]


@dataclass
class Dockerfile:
    path: Path
    #: Global ARGs (before the first FROM) and their defaults.
    args: dict[str, str]
    stages: list[Stage]

    def stage(self, target: str | None) -> Stage:
        if target is None:
            return self.stages[-1]
        for st in self.stages:
            if st.name == target:
                return st
        raise KeyError(f"{self.path}: no stage {target!r}")

    def chain(self, target: str | None) -> list[Stage]:
        """The stage and the stages it is built FROM inside this file, base first."""
        out = [self.stage(target)]
        names = {st.name for st in self.stages}
        while out[0].base in names:
            out.insert(0, self.stage(out[0].base))
        return out

    def effective(self, target: str | None, instruction: str) -> str | None:
        """The last value of an inherited instruction (USER, CMD, HEALTHCHECK...) for a target."""
        found = None
        for st in self.chain(target):
            values = st.all(instruction)
            if values:
                found = values[-1]
        return found


def read_dockerfile(path: Path) -> Dockerfile:
    lines: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#"):  # comments, also between continuation lines
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        buf += raw
        if buf.strip():
            lines.append(buf.strip())
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        ins, _, rest = line.partition(" ")
        ins = ins.upper()
        rest = rest.strip()
        if ins == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=parts[0]))
        elif not stages:
            if ins == "ARG":
                key, _, default = rest.partition("=")
                args[key] = default
        else:
            stages[-1].instructions.append((ins, rest))
    return Dockerfile(path=path, args=args, stages=stages)


def exec_form(rest: str) -> list[str] | None:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for the shell form."""
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


@functools.cache
def built_services() -> dict[str, tuple[Dockerfile, str | None]]:
    """Services built from this repository: their Dockerfile and build target."""
    out: dict[str, tuple[Dockerfile, str | None]] = {}
    for name, svc in services().items():
        build = svc.get("build")
        if not build:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (DOCKER / build["context"]).resolve()
        out[name] = (read_dockerfile(context / build.get("dockerfile", "Dockerfile")), build.get("target"))
    return out


#: Rucio's own config merge tool, which the official images' entry scripts run.
MERGE_TOOL = Path(sys.prefix) / "rucio" / "tools" / "merge_rucio_configs.py"


def merged_rucio_cfg(env: dict[str, str], tmp_path: Path) -> configparser.ConfigParser:
    """rucio.cfg as the containers get it: Rucio's own merge tool run on their RUCIO_CFG_* variables."""
    out = tmp_path / "rucio.cfg"
    rucio_env = {k: v for k, v in env.items() if k.startswith("RUCIO_CFG_")}
    subprocess.run(
        [sys.executable, str(MERGE_TOOL), "--use-env", "-d", str(out)],
        env={"PATH": os.environ.get("PATH", ""), **rucio_env},
        check=True,
        capture_output=True,
    )
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(out)
    return cfg
