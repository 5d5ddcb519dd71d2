from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from rucio_inlet.naming import read_naming_file

from inlet.config import SERVICE_NAMES, Settings, load_settings, reference_markdown

STANDARD_PORTS = {5432, 6379, 3306, 61613, 61616, 5672, 8080, 9000}


def test_defaults_avoid_standard_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    ports = {s.lake.postgres_port, s.broker.stomp_port, s.broker.openwire_port}
    ports |= {int(u.rsplit(":", 1)[1].split("/")[0]) for u in (s.rucio.host, s.s3.endpoint, s.redis.url)}
    assert not ports & STANDARD_PORTS
    assert s.lake.state_dir == tmp_path / ".lake"
    assert set(s.lake.manage) == set(SERVICE_NAMES)


def test_toml_then_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text('[broker]\nstomp_port = 1111\nhost = "broker.example"\n[lake]\nmanage = ["redis"]\n')
    monkeypatch.setenv("INLET_BROKER__STOMP_PORT", "2222")
    monkeypatch.setenv("INLET_CONFIG", str(cfg))
    s = load_settings()
    assert s.broker.stomp_port == 2222  # env wins over the file
    assert s.broker.host == "broker.example"  # the file wins over defaults
    assert s.lake.manage == ["redis"]


def test_unknown_key_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[lake]\nstate_dri = '/tmp/x'\n")
    monkeypatch.setenv("INLET_CONFIG", str(cfg))
    with pytest.raises(ValueError, match="state_dri"):
        load_settings()


def test_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INLET_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        Settings()


def test_reference_lists_every_key_with_its_env_name() -> None:
    ref = reference_markdown()

    def check(model: type[Any], env: str) -> None:
        if dataclasses.is_dataclass(model):  # [naming]: rucio_inlet's dataclass (no pydantic on the Rucio side)
            for f in dataclasses.fields(model):
                assert f"`{env}__{f.name.upper()}`" in ref
            return
        for key, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                check(ann, f"{env}__{key.upper()}")
            else:
                assert f"`{env}__{key.upper()}`" in ref

    for section, field in Settings.model_fields.items():
        assert isinstance(field.annotation, type)
        check(field.annotation, f"INLET_{section.upper()}")
    assert "`INLET_LAKE__STATE_DIR`" in ref


def test_naming_table_reads_the_same_in_inlet_and_in_rucio(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # inlet validates [naming] with pydantic, the Rucio side (no pydantic on 3.9) with jsonschema:
    # one file, one set of dataclasses, the same rules.
    toml = tmp_path / "inlet.toml"
    toml.write_text(
        '[naming]\nexperiment = "virgo"\n[naming.experiments.virgo.tiers.strain]\n'
        "files = ['V-(?P<stream>[A-Za-z0-9_]+)-(?P<run>\\d{10})-1\\.gwf']\nprotected = true\n"
    )
    monkeypatch.setenv("INLET_CONFIG", str(toml))
    n = load_settings().naming
    assert n.scopes() == ["virgo.strain"]
    assert n.run_of("virgo.strain", "V-V1Online-1234567890-1.gwf") == 1234567890
    assert read_naming_file(toml) == n
