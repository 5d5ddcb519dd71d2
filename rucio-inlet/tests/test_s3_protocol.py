from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from protocols import s3_protocol


def test_split_pfn_gives_endpoint_bucket_and_key(s3: ModuleType) -> None:
    assert s3.split_pfn("http://127.0.0.1:29000/inlet-lake/test/ab/cd/f.dat") == (
        "http://127.0.0.1:29000",
        "inlet-lake",
        "test/ab/cd/f.dat",
    )


@pytest.mark.parametrize("bad", ["http://127.0.0.1:29000/only-bucket", "/no/scheme", "http:///b/k"])
def test_split_pfn_rejects_what_is_not_a_path_style_url(s3: ModuleType, bad: str) -> None:
    with pytest.raises(s3.rucio_exc.RSEFileNameNotSupported, match="path-style"):
        s3.split_pfn(bad)


def test_credentials_come_from_rse_accounts_next_to_rucio_config(
    s3: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rucio.cfg").write_text("")
    (tmp_path / "rse-accounts.cfg").write_text(
        json.dumps({"S3": {"access_key": "AK", "secret_key": "SK-very-secret", "region": "eu-1"}})
    )
    monkeypatch.setenv("RUCIO_CONFIG", str(tmp_path / "rucio.cfg"))
    monkeypatch.setenv("INLET_S3__ACCESS_KEY", "env-key")
    monkeypatch.setenv("INLET_S3__SECRET_KEY", "env-secret")
    creds = s3.credentials_for("S3")
    assert (creds.access_key, creds.secret_key, creds.region) == ("AK", "SK-very-secret", "eu-1")
    # Another RSE has no entry: the environment is next.
    assert s3.credentials_for("OTHER").access_key == "env-key"
    # Secrets never show up in logs or tracebacks.
    assert "SK-very-secret" not in repr(creds) and "AK" not in repr(creds)


def test_incomplete_rse_accounts_entry_is_an_error_naming_the_keys(
    s3: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rucio.cfg").write_text("")
    (tmp_path / "rse-accounts.cfg").write_text(json.dumps({"S3": {"access_key": "AK"}}))
    monkeypatch.setenv("RUCIO_CONFIG", str(tmp_path / "rucio.cfg"))
    with pytest.raises(s3.S3ConfigError, match="'access_key' and 'secret_key'"):
        s3.credentials_for("S3")


def test_corrupt_rse_accounts_is_an_error_naming_the_file(
    s3: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rucio.cfg").write_text("")
    (tmp_path / "rse-accounts.cfg").write_text("{not json")
    monkeypatch.setenv("RUCIO_CONFIG", str(tmp_path / "rucio.cfg"))
    with pytest.raises(s3.S3ConfigError, match=r"rse-accounts\.cfg is not valid JSON"):
        s3.credentials_for("S3")


def test_gfal2_sees_the_same_object_through_its_s3_plugin(s3: ModuleType) -> None:
    proto = s3_protocol(s3)
    assert proto.gfal2_url("http://127.0.0.1:29000/bucket/a/b") == "s3://127.0.0.1:29000/bucket/a/b"
    assert s3_protocol(s3, "https").gfal2_url("https://h:443/bucket/k") == "s3s://h:443/bucket/k"
    opts = dict(((g, k), v) for g, k, v in proto.gfal2_options())
    assert opts[("S3", "ALTERNATE")] is True  # path-style addressing, as the PFN is


def test_s3_protocol_writes_final_keys_and_refuses_rename(s3: ModuleType) -> None:
    proto = s3_protocol(s3)
    assert proto.renaming is False
    with pytest.raises(s3.rucio_exc.RSEOperationNotSupported):
        proto.rename("http://127.0.0.1:29000/bucket/a", "http://127.0.0.1:29000/bucket/b")


def test_put_of_a_missing_local_file_says_which(s3: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(s3.rucio_exc.SourceNotFound, match="does not exist"):
        s3_protocol(s3).put("nope.dat", "http://127.0.0.1:29000/bucket/k", str(tmp_path))
