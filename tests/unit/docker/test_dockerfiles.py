"""A Dockerfile lint, as tests: pinned bases, no secrets, unprivileged users, cache-friendly order."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.unit.docker import dockerfile_lint as lint
from tests.unit.docker.deployment import DOCKER, ROOT, Dockerfile, built_services, read_dockerfile, services

DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))
INLET_SERVICES = {"uploader", "watcher", "listener", "reco", "conveyor", "bootstrap", "rucio-init"}


def _id(p: Path) -> str:
    return p.parent.name


def test_every_dockerfile_is_used_by_compose() -> None:
    used = {df.path.resolve() for df, _ in built_services().values()}
    assert {p.resolve() for p in DOCKERFILES} == used


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
@pytest.mark.parametrize("rule", lint.RULES, ids=lambda r: r.__name__)
def test_dockerfile_passes_the_lint(path: Path, rule: Callable[[Dockerfile], list[str]]) -> None:
    assert rule(read_dockerfile(path)) == []


@pytest.mark.parametrize("name", sorted(INLET_SERVICES))
def test_inlet_services_run_as_an_unprivileged_user(name: str) -> None:
    df, target = built_services()[name]
    user = df.effective(target, "USER")
    assert user is not None and user.split(":")[0] not in ("root", "0"), f"{name}: USER is {user!r}"


BAD_DOCKERFILE = """\
FROM python:latest AS base
ARG DB_PASSWORD
ENV S3_SECRET_KEY=hunter2
RUN apt-get install -y curl
RUN dnf install -y git
RUN pip install requests
RUN curl -sSL https://example.org/install.sh | sh
ADD https://example.org/tool.tar.gz /opt/
COPY inlet ./inlet
COPY pyproject.toml ./
RUN pip install --no-cache-dir .
USER root
FROM base AS worker
"""


# A "thin" layer on an official Rucio image that is not thin: a second Python, a second Rucio, its
# own entry point and user.
BAD_OFFICIAL_LAYER = """\
FROM rucio/rucio-daemons:release-41.5.1
USER root
RUN dnf install -y --setopt=install_weak_deps=False python3.11 && dnf clean all
RUN python3.11 -m venv /opt/v && /opt/v/bin/pip install --no-cache-dir rucio==41.5.1
USER 10001
ENTRYPOINT ["/opt/v/bin/rucio-judge-evaluator"]
"""


@pytest.mark.parametrize("rule", lint.RULES, ids=lambda r: r.__name__)
def test_the_lint_finds_what_it_is_for(rule: Callable[[Dockerfile], list[str]], tmp_path: Path) -> None:
    # Each rule flags a broken Dockerfile: a rule that can never fail would pass anything.
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_OFFICIAL_LAYER if rule is lint.official_entry_kept else BAD_DOCKERFILE)
    assert rule(read_dockerfile(bad)) != []


def test_the_official_layer_rule_names_each_problem(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_OFFICIAL_LAYER)
    found = " | ".join(lint.official_entry_kept(read_dockerfile(bad)))
    for problem in ("a second Python", "--no-deps", "a second Rucio", "ENTRYPOINT overrides", "USER 10001"):
        assert problem in found, problem


def _rucio_pin() -> Requirement:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in deps if Requirement(d).name == "rucio")


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_rucio_release_is_the_one_pyproject_resolves_to(path: Path) -> None:
    # Official images and the pip-installed Rucio of every image: one release, the one tests run.
    installed = version("rucio")
    assert _rucio_pin().specifier.contains(installed)
    df: Dockerfile = read_dockerfile(path)
    for st in df.stages:
        if st.base.startswith("rucio/"):
            assert st.base.split(":", 1)[1] == f"release-{installed}", f"{path}: FROM {st.base}"
        for rest in st.all("ARG"):
            if rest.startswith("RUCIO_VERSION="):
                assert rest.split("=", 1)[1] == installed, f"{path}: ARG {rest}"
        for rest in st.all("RUN"):
            if "rucio[" in rest:
                assert "==${RUCIO_VERSION}" in rest, f"{path}: pip must pin rucio to RUCIO_VERSION"


def test_the_rucio_images_derive_from_the_official_ones() -> None:
    bases = {name: built_services()[name][0].stages[0].base.split(":")[0] for name in ("rucio-server", "reaper")}
    assert bases == {"rucio-server": "rucio/rucio-server", "reaper": "rucio/rucio-daemons"}


def test_the_inlet_image_pins_the_python_pyproject_requires() -> None:
    import tomllib

    df = read_dockerfile(DOCKER / "inlet" / "Dockerfile")
    tag = df.stages[0].base.split(":")[1]
    py = re.match(r"(\d+)\.(\d+)\.(\d+)", tag)
    assert py, f"python image tag {tag} must name a patch release"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(requires).contains(py.group(0))
    # Debian bookworm's python3-gfal2 is built for CPython 3.11 (linked into the venv).
    assert (py.group(1), py.group(2)) == ("3", "11") and "bookworm" in tag


def test_compose_services_built_from_one_image_share_its_name() -> None:
    # Several services per image (the Rucio daemons, bootstrap + rucio-init): one tag, one build.
    by_image: dict[str, set[tuple[str, str | None]]] = {}
    for name, (df, target) in built_services().items():
        by_image.setdefault(services()[name]["image"], set()).add((str(df.path), target))
    assert all(len(builds) == 1 for builds in by_image.values()), by_image


SHELL_SCRIPTS = sorted(DOCKER.glob("*/*.sh"))


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_are_executable_posix_shell(path: Path) -> None:
    # COPY keeps the mode from the repository: an entrypoint without +x does not start.
    assert path.stat().st_mode & 0o111, f"{path} is not executable"
    assert path.read_text().startswith("#!/bin/sh\n"), f"{path}: the images' /bin/sh runs it"
    res = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def test_every_script_is_copied_where_compose_and_the_images_call_it() -> None:
    copied: dict[str, str] = {}
    for path in DOCKERFILES:
        for st in read_dockerfile(path).stages:
            for rest in st.all("COPY"):
                *srcs, dst = [p for p in rest.split() if not p.startswith("--")]
                for src in srcs:
                    copied[src] = dst
    missing = [p.name for p in SHELL_SCRIPTS if f"docker/{p.parent.name}/{p.name}" not in copied]
    assert missing == [], "scripts no image carries"
    names = {Path(dst).name for dst in copied.values()}
    assert {"inlet-entrypoint", "inlet-bootstrap"} <= names
    compose_programs = {str(svc["command"][0]) for svc in services().values() if isinstance(svc.get("command"), list)}
    assert "inlet-bootstrap" in compose_programs and "inlet-bootstrap" in names
