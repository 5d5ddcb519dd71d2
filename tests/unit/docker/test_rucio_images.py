"""The Rucio images: the official ones plus rucio-inlet, run by the official entry scripts.

No image can be built here (no Docker engine, no registry), so this checks what can be checked
without one: the Dockerfiles add only the distribution to the image's own Python, compose starts
the containers the way the official entry scripts expect, and what those scripts would render
(Rucio's own merge tool, the very release the images carry, run on the services' RUCIO_CFG_*)
holds the keys inlet's Rucio-side code reads. What stays unverified: that the build succeeds
(pip resolving rucio-inlet against the images' Python 3.9 site-packages) and that the
containers start; docker/README.md says so.
"""

from __future__ import annotations

import shlex
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.unit.docker import dockerfile_lint as lint
from tests.unit.docker.deployment import (
    DOCKER,
    built_services,
    environment,
    merged_rucio_cfg,
    read_dockerfile,
    services,
)

RUCIO_DOCKERFILES = {
    "rucio/rucio-server": DOCKER / "rucio-server" / "Dockerfile",
    "rucio/rucio-daemons": DOCKER / "rucio-daemons" / "Dockerfile",
}

#: The variables the official images' entry scripts and their Apache templates read besides
#: RUCIO_CFG_* (rucio/containers 025e76c: server/docker-entrypoint.sh, server/rucio.conf.j2,
#: server/httpd.conf.j2, daemons/start-daemon.sh). A variable outside these would be ignored.
ENTRY_VARS = {
    "rucio/rucio-server": {
        "RUCIO_OVERRIDE_CONFIGS",
        "RUCIO_PRINT_CFG",
        "RUCIO_ENABLE_SSL",
        "RUCIO_ENABLE_LOGS",
        "RUCIO_HOSTNAME",
        "RUCIO_SERVER_ADMIN",
        "RUCIO_SERVER_TYPE",
        "RUCIO_CA_PATH",
        "RUCIO_LOG_LEVEL",
        "RUCIO_LOG_FORMAT",
        "RUCIO_METRICS_PORT",
        "RUCIO_HEALTH_CHECK_PORT",
        "RUCIO_WSGI_DAEMON_PROCESSES",
        "RUCIO_WSGI_DAEMON_THREADS",
    },
    "rucio/rucio-daemons": {
        "RUCIO_OVERRIDE_CONFIGS",
        "RUCIO_PRINT_CFG",
        "RUCIO_ENABLE_LOGS",
        "RUCIO_DAEMON",
        "RUCIO_DAEMON_ARGS",
    },
}


def _official_base(name: str) -> str | None:
    df, target = built_services()[name]
    base = df.chain(target)[0].base.split(":")[0]
    return base if base in RUCIO_DOCKERFILES else None


RUCIO_IMAGE_SERVICES = sorted(n for n in built_services() if _official_base(n))


def test_the_rucio_images_are_built_by_compose() -> None:
    assert "rucio-server" in RUCIO_IMAGE_SERVICES and "reaper" in RUCIO_IMAGE_SERVICES
    used = {built_services()[n][0].path.resolve() for n in RUCIO_IMAGE_SERVICES}
    assert used == {p.resolve() for p in RUCIO_DOCKERFILES.values()}


@pytest.mark.parametrize("official", sorted(RUCIO_DOCKERFILES))
def test_the_layer_adds_rucio_inlet_to_the_official_python_and_nothing_else(official: str) -> None:
    df = read_dockerfile(RUCIO_DOCKERFILES[official])
    assert [st.base for st in df.stages] == [f"{official}:release-{version('rucio')}"]
    stage = df.stages[0]
    sources = [p for rest in stage.all("COPY") for p in rest.split()[:-1] if not p.startswith("--")]
    assert sources == ["rucio-inlet"], "the layer carries the Rucio-side distribution only"
    assert not stage.all("ADD")
    run = " && ".join(stage.all("RUN"))
    # The image's own interpreter (AlmaLinux 9's python3), without dependencies, then checked.
    assert "python3 -m pip install --no-cache-dir --no-deps /tmp/rucio-inlet" in run
    assert "python3 -m pip check" in run
    assert "import" in run and "rucio_inlet" in run
    assert lint.official_entry_kept(df) == []


def test_no_image_carries_a_second_python() -> None:
    # inlet's own image is Python 3.11 by design (its services); the Rucio images have only theirs.
    for path in RUCIO_DOCKERFILES.values():
        text = path.read_text()
        for word in ("python3.11", "venv", "dnf ", "/opt/inlet", "gunicorn"):
            assert word not in text, f"{path}: {word}"
    assert not (DOCKER / "rucio" / "start.sh").exists(), "the official entry scripts replace it"


@pytest.mark.parametrize("name", RUCIO_IMAGE_SERVICES)
def test_compose_starts_the_rucio_containers_through_the_official_entry_scripts(name: str) -> None:
    svc = services()[name]
    assert "command" not in svc and "entrypoint" not in svc, f"{name}: the official entry script must run"
    official = _official_base(name)
    assert official is not None
    extra = {k for k in environment(svc) if k.startswith("RUCIO_") and not k.startswith("RUCIO_CFG_")}
    assert sorted(extra - ENTRY_VARS[official]) == [], f"{name}: variables the entry scripts never read"
    if official == "rucio/rucio-daemons":
        daemon = environment(svc)["RUCIO_DAEMON"]
        assert (Path(sys.prefix) / "bin" / f"rucio-{daemon}").is_file(), f"Rucio has no rucio-{daemon}"
        args = shlex.split(environment(svc).get("RUCIO_DAEMON_ARGS", ""))
        assert all(a.startswith("--") or not a.startswith("-") for a in args), args


def test_the_server_answers_where_the_official_image_listens() -> None:
    # Apache on 80 (443 with RUCIO_ENABLE_SSL=True); clients and the published port follow.
    server = services()["rucio-server"]
    assert [str(p).rsplit(":", 1)[1] for p in server["ports"]] == ["80"]
    for name in ("uploader", "listener", "bootstrap"):
        env = environment(services()[name])
        assert env["INLET_RUCIO__HOST"] == env["RUCIO_CFG_CLIENT_RUCIO_HOST"] == "http://rucio-server:80"
    health = read_dockerfile(RUCIO_DOCKERFILES["rucio/rucio-server"]).effective(None, "HEALTHCHECK")
    assert health is not None and "http://127.0.0.1/ping" in health


def _mounted_at(svc: dict[str, object], source: str) -> str | None:
    for vol in svc.get("volumes", []):  # type: ignore[attr-defined]
        src, _, rest = str(vol).partition(":")
        if src == source:
            return rest.split(":")[0]
    return None


@pytest.mark.parametrize("name", RUCIO_IMAGE_SERVICES)
def test_the_rendered_rucio_cfg_holds_the_keys_rucio_inlet_reads(name: str, tmp_path: Path) -> None:
    svc = services()[name]
    cfg = merged_rucio_cfg(environment(svc), tmp_path)
    package = cfg.get("policy", "package")
    assert package, "[policy] package"
    # The naming rules: the one file inlet's services read, mounted where rucio.cfg says.
    assert cfg.get("policy", "inlet_naming_file") == _mounted_at(svc, "./config/inlet.toml")
    plugins = cfg.get("metadata", "plugins").split(",")
    assert plugins[-1] == "rucio.core.did_meta_plugins.json_meta.JSONDidMeta", "Rucio's JSON plugin claims every key"
    ours = [p for p in plugins if not p.startswith("rucio.")]
    top = package.split(".")[0]
    assert len(ours) == 2 and all(p.split(".")[0] == top for p in ours), "plugins of the policy distribution"
    assert cfg.get("metadata", "inlet_catalog_url").startswith("mysql+pymysql://")
    assert cfg.get("conveyor", "transfertool") in ("gfal2", "fts3")
    for key in ("gfal2_link_concurrency", "gfal2_transfer_timeout", "gfal2_tape_recall_delay"):
        assert cfg.get("conveyor", key).isdigit(), key
    assert cfg.get("cache", "url") == "memcached:11211"


def test_every_rucio_process_waits_for_the_shared_memcached() -> None:
    # Rucio decides once, when rucio.common.cache is imported, whether memcached answers: a process
    # started before it would run on null caches for its whole life.
    memcached = services()["memcached"]
    assert memcached["image"].startswith("memcached:1.6.")
    assert "-p" not in memcached["command"], "Rucio's [cache] url names port 11211"
    for name, svc in services().items():
        env = environment(svc)
        if "RUCIO_CFG_DATABASE_DEFAULT" in env and name != "rucio-init":
            assert svc["depends_on"]["memcached"]["condition"] == "service_healthy", name


def test_the_rucio_layers_send_only_the_distribution() -> None:
    for path in RUCIO_DOCKERFILES.values():
        ignore = path.with_name("Dockerfile.dockerignore").read_text().split()
        assert "*" in ignore and "!rucio-inlet/" in ignore
        assert not any(p.startswith("!") and p != "!rucio-inlet/" for p in ignore), path
