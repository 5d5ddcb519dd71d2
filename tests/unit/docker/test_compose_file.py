"""docker/compose.yaml: valid Compose, every file it names exists, every secret comes from .env."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.docker.deployment import (
    COMPOSE_FILE,
    DOCKER,
    ENV_EXAMPLE,
    ROOT,
    built_services,
    compose,
    env_example,
    raw_compose,
    schema,
    services,
    variables,
)

ONE_SHOTS = {"rucio-init", "bootstrap"}


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    jsonschema.Draft201909Validator.check_schema(schema())
    validator = jsonschema.Draft201909Validator(schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_the_schema_rejects_what_compose_rejects() -> None:
    # The check above means something only if the vendored schema really constrains services.
    bad = {"services": {"x": {"image": "a:1", "restart_policy": "always"}}}
    assert not jsonschema.Draft201909Validator(schema()).is_valid(bad)


def test_every_variable_without_a_default_is_defined_in_env_example() -> None:
    example = env_example()
    text = COMPOSE_FILE.read_text()
    required = {name for name, op in variables(text) if op in (None, "?", ":?")}
    assert sorted(required - example.keys()) == []
    # And .env.example has nothing compose never reads (a stale name misleads an operator).
    used = {name for name, _ in variables(text)}
    assert sorted(example.keys() - used - {"COMPOSE_PROJECT_NAME"}) == []


def test_secrets_are_interpolated_never_written_in_compose() -> None:
    for name, svc in raw_compose()["services"].items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), name
        for key, value in env.items():
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "PWD")) and value:
                assert "${" in str(value), f"{name}: {key} is written in the file, not taken from docker/.env"


def test_real_env_file_is_git_ignored() -> None:
    res = subprocess.run(
        ["git", "check-ignore", "-q", str(DOCKER / ".env")], cwd=ROOT, capture_output=True, check=False
    )
    assert res.returncode == 0, "docker/.env must be git-ignored"
    res = subprocess.run(["git", "check-ignore", "-q", str(ENV_EXAMPLE)], cwd=ROOT, capture_output=True, check=False)
    assert res.returncode == 1, "docker/.env.example must be committed"


@pytest.mark.parametrize("name", sorted(built_services()))
def test_build_context_and_dockerfile_exist(name: str) -> None:
    build = services()[name]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context.is_dir(), f"{name}: build context {context} is missing"
    assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"


def _copy_sources(rest: str) -> list[str]:
    parts = [p for p in rest.split() if not p.startswith("--")]
    return parts[:-1]


@pytest.mark.parametrize("name", sorted(built_services()))
def test_files_the_dockerfile_copies_exist_and_reach_the_build(name: str) -> None:
    dockerfile, target = built_services()[name]
    context = (DOCKER / services()[name]["build"]["context"]).resolve()
    ignore = dockerfile.path.with_name(dockerfile.path.name + ".dockerignore")
    assert ignore.is_file(), f"{dockerfile.path}: no {ignore.name}; the whole repository (.venv...) would be sent"
    patterns = [p.strip() for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")]
    for stage in dockerfile.chain(target):
        for rest in stage.all("COPY"):
            for src in _copy_sources(rest):
                assert (context / src).exists(), f"{dockerfile.path}: COPY {src}: not in the context"
                assert _sent(src, patterns), f"{dockerfile.path}: COPY {src} is excluded by {ignore.name}"


def _sent(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    from fnmatch import fnmatch

    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if any(fnmatch(p, pat) for p in prefixes):
            sent = negate
    return sent


def _mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for vol in svc.get("volumes", []):
        assert isinstance(vol, str), "use the short volume syntax"
        src, _, rest = vol.partition(":")
        out.append((src, rest.split(":")[0]))
    return out


def test_every_bind_mounted_file_exists_and_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes", {}))
    for name, svc in services().items():
        for src, dst in _mounts(svc):
            if src.startswith((".", "/")):
                assert (DOCKER / src).resolve().exists(), f"{name}: {src} (mounted at {dst}) does not exist"
            else:
                assert src in declared, f"{name}: volume {src} is not declared under volumes:"


def test_state_that_must_persist_is_on_named_volumes() -> None:
    needs = {
        "postgres": "/var/lib/postgresql/data",
        "mariadb": "/var/lib/mysql",
        "activemq": "/opt/apache-activemq/data",
        "minio": "/data",
        "redis": "/data",
        "uploader": "/var/lib/inlet/uploader",
        "conveyor": "/srv/rse",
    }
    declared = set(compose()["volumes"])
    for name, path in needs.items():
        assert any(src in declared and dst == path for src, dst in _mounts(services()[name])), (name, path)


def test_every_long_running_service_has_a_health_check() -> None:
    built = built_services()
    for name, svc in services().items():
        if name in ONE_SHOTS:
            assert svc.get("restart") == "no", f"{name} is a one-shot: restart must be 'no'"
            continue
        has = "healthcheck" in svc and not svc["healthcheck"].get("disable")
        if not has and name in built:
            dockerfile, target = built[name]
            has = dockerfile.effective(target, "HEALTHCHECK") not in (None, "NONE")
        assert has, f"{name}: no health check in compose or in its image"
        assert svc.get("restart") == "unless-stopped", name


def test_dependencies_exist_and_wait_for_health_where_health_is_known() -> None:
    svcs = services()
    for name, svc in svcs.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in svcs, f"{name} depends on unknown service {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOTS else "service_healthy"
            assert cond["condition"] == want, f"{name} -> {dep}: {cond['condition']}, expected {want}"


def test_only_the_entry_points_of_the_lake_are_published() -> None:
    published = {name for name, svc in services().items() if svc.get("ports")}
    # People's entry point too: the shift workers' status pages (inlet web).
    assert published == {"rucio-server", "activemq", "minio", "web"}
    for name in published:
        for port in services()[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} must bind PUBLISH_ADDR (default loopback)"
