"""docker/kubernetes/: the Rucio charts' values overlays and the manifests of inlet's services.

What is checked here, without a cluster or a helm binary:
- the overlays, against the charts' own values. rucio/helm-charts ships no values schema, so the
  schema is derived from the vendored values.yaml (every key an overlay sets must be a key of the
  chart's values.yaml, with its type; ``config`` and empty maps/lists are free-form, as the
  charts pass them through);
- what the charts make of ``config``: the chart writes it as conf.d JSON and the image's entry
  script merges it with the RUCIO_CFG_* variables by Rucio's own tool; the test does the same
  with the same tool and checks the keys inlet's Rucio-side code reads;
- the manifests, with kubernetes-validate (the Kubernetes API's JSON schemas, strict), and their
  commands, settings, images and secrets against the code, compose and the overlays.
Not checked: what `helm template` renders (the chart's templates are not run) and anything a
cluster would tell (docker/kubernetes/README.md).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

from inlet.cli.main import app
from inlet.config import Settings
from tests.unit.docker.deployment import DOCKER, MERGE_TOOL, ROOT, environment, merged_rucio_cfg, services
from tests.unit.docker.test_commands import check_argv
from tests.unit.docker.test_config_in_step import SITE_SPECIFIC, _resolve, _settings_path

K8S = DOCKER / "kubernetes"
VENDOR = K8S / "vendor" / "rucio-helm-charts"
INLET_DIR = K8S / "inlet"

#: Overlays, in the order helm is given them (-f ... -f ...), per chart.
OVERLAYS: dict[str, tuple[str, list[Path]]] = {
    "server": ("rucio-server", [K8S / "rucio" / "rucio-server.values.yaml"]),
    "daemons": ("rucio-daemons", [K8S / "rucio" / "rucio-daemons.values.yaml"]),
    "daemons+fts": (
        "rucio-daemons",
        [K8S / "rucio" / "rucio-daemons.values.yaml", K8S / "rucio" / "rucio-daemons.fts.values.yaml"],
    ),
}
#: The release names docker/kubernetes/README.md installs the charts under.
RELEASES = {"rucio-server": "rucio-server", "rucio-daemons": "rucio-daemons"}

#: The rucio-inlet distribution's names (its import package is the policy package).
POLICY_PACKAGE = "rucio_inlet"
METADATA_PLUGINS = (
    "rucio_inlet.runmeta.RunMetaPlugin,rucio_inlet.embargo_meta.EmbargoMetaPlugin,"
    "rucio.core.did_meta_plugins.json_meta.JSONDidMeta"
)
#: Paths under which a chart passes a map through as it is (config: into rucio.cfg).
FREE_FORM = {("config",)}
#: Kubernetes API versions the manifests must be valid for: an old supported one and the newest.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def chart_values(chart: str) -> dict[str, Any]:
    data = _yaml(VENDOR / chart / "values.yaml")
    assert isinstance(data, dict)
    return data


def schema_of(value: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON schema of a values.yaml: its keys (closed maps) and the types of its values."""
    if isinstance(value, dict):
        if not value or path in FREE_FORM:
            return {"type": "object"}
        props = {k: schema_of(v, (*path, k)) for k, v in value.items()}
        return {"type": "object", "properties": props, "additionalProperties": False}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int | float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    return {}  # null in values.yaml: the chart accepts anything there


def merged_values(key: str) -> dict[str, Any]:
    """helm's merge of the chart's values.yaml and the overlays: maps deep-merged, the rest replaced."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            out = dict(base)
            for k, v in over.items():
                out[k] = merge(base.get(k), v) if k in base else copy.deepcopy(v)
            return out
        return copy.deepcopy(over)

    chart, files = OVERLAYS[key]
    values: dict[str, Any] = chart_values(chart)
    for f in files:
        values = merge(values, _yaml(f))
    return values


def _secret_placeholder(ref: dict[str, str]) -> str:
    return f"from-secret-{ref['name']}-{ref['key']}"


def rendered_rucio_cfg(key: str, tmp_path: Path) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """rucio.cfg of a chart's pod: ``config`` as the chart's conf.d JSON, additionalEnvs as the
    pod's environment, merged by Rucio's tool as the image's entry script does."""
    values = merged_values(key)
    conf_d = tmp_path / key / "conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "10_common.json").write_text(json.dumps(values.get("config") or {}))
    env = {"PATH": os.environ.get("PATH", "")}
    for item in values.get("additionalEnvs") or []:
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        env[item["name"]] = _secret_placeholder(ref) if ref else str(item["value"])
    out = tmp_path / key / "rucio.cfg"
    cmd = [sys.executable, str(MERGE_TOOL), "--use-env", "-s", f"{conf_d}/", "-d", str(out)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(out)
    return {s: dict(cfg.items(s)) for s in cfg.sections()}, values


def compose_rucio_cfg(service: str, tmp_path: Path) -> dict[str, dict[str, str]]:

    (tmp_path / service).mkdir(exist_ok=True)
    cfg = merged_rucio_cfg(environment(services()[service]), tmp_path / service)
    return {s: dict(cfg.items(s)) for s in cfg.sections()}


def chart_fullname(release: str, chart: str) -> str:
    """The charts' "rucio.fullname": the release name if it contains the chart's name."""
    return release if chart in release else f"{release}-{chart}"


# --- the vendored values and their source ------------------------------------------------------


def test_the_vendored_values_name_their_source_and_licence() -> None:
    source = (VENDOR / "SOURCE").read_text()
    assert "https://github.com/rucio/helm-charts" in source
    assert re.search(r"\b[0-9a-f]{40}\b", source), "the commit"
    assert "no values.schema.json" in source, "say that the charts ship no schema"
    for chart in ("rucio-server", "rucio-daemons"):
        assert f"charts/{chart}/values.yaml" in source
        assert chart_values(chart), chart
    licence = (VENDOR / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence


# --- the overlays ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(OVERLAYS))
def test_the_overlays_validate_against_the_charts_values(key: str) -> None:
    chart, files = OVERLAYS[key]
    schema = schema_of(chart_values(chart))
    validator = jsonschema.Draft202012Validator(schema)
    for f in files:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_yaml(f))]
        assert errors == [], f.name


def test_the_derived_schema_refuses_what_the_chart_does_not_have() -> None:
    # The check above means something only if a misspelled key or a wrong type fails it.
    validator = jsonschema.Draft202012Validator(schema_of(chart_values("rucio-daemons")))
    assert validator.is_valid({"judgeEvaluatorCount": 1, "config": {"anything": {"goes": "1"}}})
    assert not validator.is_valid({"judgeEvaluatorCounts": 1})
    assert not validator.is_valid({"judgeEvaluatorCount": "one"})
    assert not validator.is_valid({"image": {"repository": "x", "digest": "sha256:0"}})


@pytest.mark.parametrize("key", sorted(OVERLAYS))
def test_the_charts_pods_get_rucio_inlets_configuration(key: str, tmp_path: Path) -> None:
    cfg, values = rendered_rucio_cfg(key, tmp_path)
    assert cfg["policy"]["package"] == POLICY_PACKAGE
    assert cfg["metadata"]["plugins"] == METADATA_PLUGINS
    # Secrets arrive as variables from a Secret, and win over the chart's config.
    assert cfg["database"]["default"] == "from-secret-rucio-inlet-secrets-database-url"
    assert cfg["metadata"]["inlet_catalog_url"] == "from-secret-rucio-inlet-secrets-catalog-url"
    # The naming file is mounted where [policy] inlet_naming_file says, from the inlet-config Secret.
    mounts = {m["mountPath"]: m for m in values["secretMounts"]}
    naming = mounts[cfg["policy"]["inlet_naming_file"]]
    assert (naming["secretFullName"], naming["subPath"]) == ("inlet-config", "inlet.toml")
    # Metrics on.
    assert values["monitoring"]["enabled"] is True
    assert cfg["monitor"]["enable_metrics"] == "True"
    # The image with the rucio-inlet layer, built from docker/ on the same Rucio release.
    built_by = {"rucio-server": "rucio-server", "rucio-daemons": "reaper"}[OVERLAYS[key][0]]
    assert values["image"]["repository"].endswith(services()[built_by]["image"].split(":")[0])
    assert values["image"]["tag"].startswith(f"release-{version('rucio')}")


def test_the_server_overlay_runs_replicas_of_the_server() -> None:
    values = merged_values("server")
    assert values["replicaCount"] >= 2
    assert values["errorLog"]["tag"] != "latest"


def test_the_daemons_overlay_runs_the_lakes_daemons_and_gfal2_transfers(tmp_path: Path) -> None:
    from inlet.lake.services.daemons import DAEMONS

    cfg, values = rendered_rucio_cfg("daemons", tmp_path)
    counts = {
        re.sub(r"(?<!^)([A-Z])", r"-\1", k.removesuffix("Count")).lower(): v
        for k, v in values.items()
        if k.endswith("Count")
    }
    running = {d for d, n in counts.items() if n}
    assert running == set(DAEMONS), "the daemons `inlet lake` runs, each once"
    assert not any(n for d, n in counts.items() if d.startswith("conveyor")), "gfal2: inlet's conveyor copies"
    assert cfg["conveyor"]["transfertool"] == "gfal2"
    for option in ("gfal2_link_concurrency", "gfal2_transfer_timeout", "gfal2_tape_recall_delay"):
        assert cfg["conveyor"][option].isdigit(), option
    assert cfg["messaging-hermes"]["password"] == "from-secret-rucio-inlet-secrets-hermes-password"
    mounts = {m["mountPath"]: m for m in values["secretMounts"]}
    assert mounts["/opt/rucio/etc/rse-accounts.cfg"]["subPath"] == "rse-accounts.cfg"


def test_the_fts_overlay_runs_rucios_conveyor_daemons_on_fts(tmp_path: Path) -> None:
    cfg, values = rendered_rucio_cfg("daemons+fts", tmp_path)
    assert cfg["conveyor"]["transfertool"] == "fts3"
    assert cfg["conveyor"]["ftshosts"].startswith("https://")
    for key in ("conveyorTransferSubmitterCount", "conveyorPollerCount", "conveyorFinisherCount"):
        assert values[key] == 1, key
    assert values["conveyorTransferSubmitter"]["activities"] == "", "the chart's example activities would filter"
    # The chart's FTS proxy and CA secrets are mounted where its [conveyor] options point.
    assert values["useDeprecatedImplicitSecrets"] is True
    assert cfg["conveyor"]["usercert"].startswith("/opt/proxy/") and cfg["conveyor"]["cacert"].startswith("/opt/certs/")


#: What the Kubernetes pods may set differently from compose: hosts, paths and secrets (compose's
#: site-specific options), the names of the rucio-inlet distribution (checked against the
#: constants above), metrics (on here), the transfertool of the FTS variant.
K8S_SPECIFIC = SITE_SPECIFIC | {
    ("policy", "package"),
    ("metadata", "plugins"),
    ("monitor", "enable_metrics"),
    ("messaging-hermes", "username"),
}
#: The sections whose options inlet's Rucio-side code or inlet's flow depend on.
COMPARED = ("policy", "metadata", "database", "hermes", "messaging-hermes", "conveyor", "credentials", "api")


@pytest.mark.parametrize(("key", "service"), [("server", "rucio-server"), ("daemons", "reaper")])
def test_the_overlays_configure_rucio_as_compose_does(key: str, service: str, tmp_path: Path) -> None:
    ours, _ = rendered_rucio_cfg(key, tmp_path)
    theirs = compose_rucio_cfg(service, tmp_path)
    sections = COMPARED if key == "daemons" else ("policy", "metadata", "database", "credentials", "api")
    differ = [
        f"[{s}] {o}: {ours.get(s, {}).get(o)!r}, compose says {v!r}"
        for s in sections
        for o, v in theirs.get(s, {}).items()
        if (s, o) not in K8S_SPECIFIC and ours.get(s, {}).get(o) != v
    ]
    assert differ == []


@pytest.mark.parametrize("path", sorted((K8S / "rucio").glob("*.yaml")), ids=lambda p: p.name)
def test_no_secret_is_written_in_an_overlay(path: Path) -> None:
    values = _yaml(path)
    for item in values.get("additionalEnvs") or []:
        if re.search(r"PASSWORD|DEFAULT|URL|SECRET|KEY", item["name"]):
            assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
    for section, options in (values.get("config") or {}).items():
        for option in options:
            secret = re.search(r"password|secret|_key$", option) or (section, option) == ("database", "default")
            assert not secret, f"[{section}] {option}"


def test_the_secrets_the_overlays_and_manifests_use_are_in_the_example() -> None:
    example = {d["metadata"]["name"]: d["stringData"] for d in _docs(INLET_DIR / "secrets.example.yaml")}
    example["inlet-config"] = _docs(INLET_DIR / "inlet-config.yaml")[0]["stringData"]
    used: set[tuple[str, str]] = set()
    for key in OVERLAYS:
        values = merged_values(key)
        for item in values.get("additionalEnvs") or []:
            ref = item["valueFrom"]["secretKeyRef"]
            used.add((ref["name"], ref["key"]))
        used |= {(m["secretFullName"], m["subPath"]) for m in values.get("secretMounts") or []}
    for doc in _manifests():
        for c in _containers(doc):
            for e in c.get("env", []):
                if "secretKeyRef" in e.get("valueFrom", {}):
                    used.add((e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"]))
    missing = sorted(f"{n}/{k}" for n, k in used if k not in example.get(n, {}))
    assert missing == []
    json.loads(example["rucio-inlet-secrets"]["rse-accounts.cfg"])  # Rucio reads it as JSON


# --- the manifests of inlet's services ---------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    data = _yaml(INLET_DIR / "kustomization.yaml")
    assert data["kind"] == "Kustomization"
    return data


def _manifests() -> list[dict[str, Any]]:
    return [d for name in _kustomization()["resources"] for d in _docs(INLET_DIR / name)]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] != "Deployment":
        return []
    return list(doc["spec"]["template"]["spec"]["containers"])


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].removeprefix("inlet-"): d for d in _manifests() if d["kind"] == "Deployment"}


def test_the_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    files = {p.name for p in INLET_DIR.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert sorted(_kustomization()["resources"]) == sorted(files)


MANIFEST_DOCS = [
    pytest.param(d, id=f"{p.name}:{d['kind']}:{d['metadata']['name']}")
    for p in sorted(INLET_DIR.glob("*.yaml"))
    if p.name != "kustomization.yaml"
    for d in _docs(p)
]


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
@pytest.mark.parametrize("doc", MANIFEST_DOCS)
def test_the_manifests_validate_against_the_kubernetes_api(doc: dict[str, Any], k8s: str) -> None:
    kubernetes_validate.validate(doc, k8s, strict=True)


def test_kubernetes_validate_refuses_a_misspelled_field() -> None:
    bad = copy.deepcopy(_deployments()["listener"])
    bad["spec"]["template"]["spec"]["containers"][0]["comand"] = ["inlet"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", sorted(_deployments()))
def test_the_pods_run_real_commands_with_the_images_entrypoint(name: str) -> None:
    for c in _containers(_deployments()[name]):
        assert "command" not in c, "the image's ENTRYPOINT (tini, inlet-entrypoint) must stay"
        check_argv(c["args"])
        probe = c["livenessProbe"]["exec"]["command"]
        check_argv(probe if probe[0] != "sh" else probe[2].split(">")[0].split())


@pytest.mark.parametrize("name", sorted(_deployments()))
def test_the_pods_run_the_images_compose_builds_as_their_user(name: str) -> None:
    pod = _deployments()[name]["spec"]["template"]["spec"]
    for c in pod["containers"]:
        repo, tag = c["image"].rsplit(":", 1)
        assert repo.endswith(services()[name]["image"].split(":")[0]), c["image"]
        assert tag == version("inlet"), "images tagged with inlet's release"
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsNonRoot"]) == (10001, True)
    assert "--uid 10001" in (DOCKER / "inlet" / "Dockerfile").read_text()


def test_every_inlet_setting_in_the_manifests_is_real() -> None:
    env: dict[str, str] = {}
    for doc in _manifests():
        if doc["kind"] == "ConfigMap":
            env.update(doc["data"])
        for c in _containers(doc):
            env.update({e["name"]: e.get("value", "") for e in c.get("env", [])})
    env.update(
        next(d for d in _docs(INLET_DIR / "secrets.example.yaml") if d["metadata"]["name"] == "inlet-secrets")[
            "stringData"
        ]
    )
    for key in env:
        if key.startswith("INLET_") and key != "INLET_CONFIG":
            _resolve(Settings, _settings_path(key))


def test_inlets_pods_are_rucio_clients_of_the_charts_server_with_the_policy_package() -> None:
    env = next(d for d in _manifests() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "inlet-env")["data"]
    port = chart_values("rucio-server")["service"]["port"]
    server = f"http://{chart_fullname(RELEASES['rucio-server'], 'rucio-server')}:{port}"
    assert env["INLET_RUCIO__HOST"] == env["RUCIO_CFG_CLIENT_RUCIO_HOST"] == server
    assert env["RUCIO_CFG_POLICY_PACKAGE"] == POLICY_PACKAGE
    assert env["RUCIO_CFG_POLICY_INLET_NAMING_FILE"] == env["INLET_CONFIG"] == "/etc/inlet/inlet.toml"
    assert not any(k.startswith("RUCIO_CFG_DATABASE") for k in env), "clients never hold Rucio's database"


def test_the_naming_file_is_docker_config_inlet_toml() -> None:
    doc = _docs(INLET_DIR / "inlet-config.yaml")[0]
    assert doc["stringData"]["inlet.toml"] == (DOCKER / "config" / "inlet.toml").read_text()
    for name, dep in _deployments().items():
        mounts = {m["mountPath"]: m for c in _containers(dep) for m in c["volumeMounts"]}
        assert mounts["/etc/inlet/inlet.toml"]["subPath"] == "inlet.toml", name


def test_replicas_scale_where_the_services_allow_it() -> None:
    deps = _deployments()
    # Competing consumers of one queue; Celery workers of one queue.
    assert deps["listener"]["spec"]["replicas"] >= 2
    assert deps["uploader"]["spec"]["replicas"] >= 2
    # One watcher per DAQ disk; one gfal2 conveyor (submitter and poller share its process).
    for name in ("watcher", "conveyor"):
        assert deps[name]["spec"]["replicas"] == 1 and deps[name]["spec"]["strategy"]["type"] == "Recreate", name
    listener_env = [e["name"] for c in _containers(deps["listener"]) for e in c.get("env", [])]
    assert not any("QUEUE" in n for n in listener_env), "every replica consumes the same queues"


def test_the_gfal2_conveyor_runs_on_the_daemons_charts_configuration(tmp_path: Path) -> None:
    dep = _deployments()["conveyor"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    conf_d = env["RUCIO_OVERRIDE_CONFIGS"]["value"]
    common = mounts[f"{conf_d}10_common.json"]
    expected = f"{chart_fullname(RELEASES['rucio-daemons'], 'rucio-daemons')}.config.common"
    assert volumes[common["name"]]["secret"]["secretName"] == expected
    assert common["subPath"] == "common.json"
    # What the chart's pods read from files, this pod reads from the same paths.
    cfg, values = rendered_rucio_cfg("daemons", tmp_path)
    assert cfg["policy"]["inlet_naming_file"] in mounts
    assert "/opt/rucio/etc/rse-accounts.cfg" in mounts
    assert {e for e in env if e.startswith("RUCIO_CFG_")} >= {
        i["name"] for i in values["additionalEnvs"] if "valueFrom" in i
    }, "the same secrets as the chart's pods"
    check_argv(c["args"])
    assert c["args"][:4] == ["inlet", "-v", "daemon", "conveyor"]
    # Woken as compose's and the lake's conveyor is (the rucio-init Job installs the triggers).
    assert [a for a in c["args"] if a.startswith("-")] == [
        a for a in services()["conveyor"]["command"] if a.startswith("-")
    ]


def test_inlet_web_is_deployed_once_it_exists() -> None:
    # A documented future entry (kustomization.yaml) until the command exists; then it is required.
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    if "web" in commands:
        assert "web.yaml" in _kustomization()["resources"]
    else:
        assert not (INLET_DIR / "web.yaml").exists(), "no manifest for a command that does not exist"
    assert "inlet web" in (INLET_DIR / "kustomization.yaml").read_text()


def test_the_readme_says_what_is_not_verified() -> None:
    text = (K8S / "README.md").read_text().lower()
    for words in ("helm template", "cluster", "not verified"):
        assert words in text, words
    assert (ROOT / "docs" / "site-guide.md").is_file()
