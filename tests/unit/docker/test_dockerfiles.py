"""A Dockerfile lint, as tests: pinned bases, no secrets, unprivileged users, cache-friendly order."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.unit.docker.deployment import DOCKER, ROOT, Dockerfile, built_services, read_dockerfile, services

DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))
INLET_SERVICES = {"uploader", "watcher", "listener", "reco", "conveyor", "bootstrap", "rucio-init"}
# `pip install [options] . [more]` (the project from its pyproject.toml), in any RUN.
_PIP_INSTALL_PROJECT = re.compile(r"pip\"?\s+install\s+(--?\S+\s+)*\.(\s|$)")
_SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|_KEY\b|ACCESS_KEY|PRIVATE", re.IGNORECASE)


def _id(p: Path) -> str:
    return p.parent.name


def test_every_dockerfile_is_used_by_compose() -> None:
    used = {df.path.resolve() for df, _ in built_services().values()}
    assert {p.resolve() for p in DOCKERFILES} == used


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_base_images_are_pinned_to_a_version(path: Path) -> None:
    df = read_dockerfile(path)
    stage_names = {st.name for st in df.stages}
    for st in df.stages:
        if st.base in stage_names:
            continue
        image = st.base
        assert "$" not in image, f"{path}: FROM {image}: resolve ARGs in FROM so the pin is visible"
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag, f"{path}: FROM {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{path}: FROM {image}: pin a versioned tag"


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_no_secret_is_baked_into_an_image(path: Path) -> None:
    df = read_dockerfile(path)
    for st in df.stages:
        for ins in ("ENV", "ARG", "LABEL"):
            for rest in st.all(ins):
                for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_.-]*)=(\"[^\"]*\"|\S*)", rest):
                    assert not (_SECRET_WORDS.search(key) and value.strip('"')), f"{path}: {ins} {key}=... is a secret"
                if ins == "ARG" and "=" not in rest:
                    assert not _SECRET_WORDS.search(rest), f"{path}: ARG {rest}: build args end up in the image history"
        for rest in st.all("RUN"):
            assert not re.search(r"(password|secret)\s*[=:]\s*\S", rest, re.IGNORECASE), f"{path}: RUN holds a secret"


@pytest.mark.parametrize("name", sorted(INLET_SERVICES))
def test_inlet_services_run_as_an_unprivileged_user(name: str) -> None:
    df, target = built_services()[name]
    user = df.effective(target, "USER")
    assert user is not None and user.split(":")[0] not in ("root", "0"), f"{name}: USER is {user!r}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_final_stage_runs_unprivileged(path: Path) -> None:
    # The Rucio images too: the official ones run as root; ours switch to the inlet user.
    df = read_dockerfile(path)
    for st in df.stages:
        users = st.all("USER")
        if users:
            assert users[-1].split(":")[0] not in ("root", "0"), f"{path}: stage {st.name} ends as root"


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_package_installs_skip_recommends_and_clean_up(path: Path) -> None:
    df = read_dockerfile(path)
    for st in df.stages:
        for rest in st.all("RUN"):
            if "apt-get install" in rest:
                assert "--no-install-recommends" in rest, f"{path}: apt-get install without --no-install-recommends"
                assert "apt-get update" in rest, f"{path}: apt-get install in a layer without apt-get update"
                assert "rm -rf /var/lib/apt/lists" in rest, f"{path}: apt lists left in the layer"
            if re.search(r"\b(dnf|yum) +(-y +)?install\b", rest):
                assert "install_weak_deps=False" in rest, f"{path}: dnf install pulls weak dependencies"
                assert "clean all" in rest, f"{path}: dnf cache left in the layer"
            if "pip install" in rest:
                assert "PIP_NO_CACHE_DIR=1" in " ".join(st.all("ENV")) or "--no-cache-dir" in rest, path


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_dependencies_are_installed_before_the_source_is_copied(path: Path) -> None:
    # pyproject.toml first, dependencies installed, then inlet/: a code change keeps the dependency layer.
    df = read_dockerfile(path)
    for st in df.stages:
        order = [(ins, rest) for ins, rest in st.instructions if ins in ("COPY", "RUN")]
        copies = [i for i, (ins, rest) in enumerate(order) if ins == "COPY"]
        src = [i for i in copies if re.search(r"(^|\s)inlet(/|\s|$)", order[i][1])]
        if not src:
            continue
        pyproject = [i for i in copies if "pyproject.toml" in order[i][1]]
        assert pyproject and pyproject[0] < src[0], f"{path}: COPY pyproject.toml must come before COPY inlet"
        installs = [i for i, (ins, rest) in enumerate(order) if ins == "RUN" and _PIP_INSTALL_PROJECT.search(rest)]
        assert installs and pyproject[0] < installs[0] < src[0], f"{path}: install dependencies before COPY inlet"
        assert any(i > src[0] and "--no-deps" in order[i][1] for i in installs), f"{path}: inlet itself --no-deps"


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_every_image_has_a_health_check_and_an_entry(path: Path) -> None:
    df = read_dockerfile(path)
    assert df.effective(None, "HEALTHCHECK") is not None, f"{path}: no HEALTHCHECK"
    for st in df.stages:
        assert df.effective(st.name, "CMD") or df.effective(st.name, "ENTRYPOINT"), f"{path}: {st.name} runs nothing"


@pytest.mark.parametrize("path", DOCKERFILES, ids=_id)
def test_no_add_from_urls_and_no_curl_pipe_shell(path: Path) -> None:
    df = read_dockerfile(path)
    for st in df.stages:
        for rest in st.all("ADD"):
            assert "://" not in rest, f"{path}: ADD from a URL is unpinned and unchecked"
        for rest in st.all("RUN"):
            assert not re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", rest), f"{path}: piping a download into a shell"


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
    bases = {name: built_services()[name][0].stages[0].base.split(":")[0] for name in ("rucio-server", "hermes")}
    assert bases == {"rucio-server": "rucio/rucio-server", "hermes": "rucio/rucio-daemons"}


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
    assert {"inlet-entrypoint", "inlet-bootstrap", "inlet-rucio-start"} <= names
    compose_programs = {str(svc["command"][0]) for svc in services().values() if isinstance(svc.get("command"), list)}
    assert "inlet-bootstrap" in compose_programs and "inlet-bootstrap" in names
