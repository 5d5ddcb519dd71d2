"""Secrets never reach a terminal or a log: `inlet config show` and every log record are masked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.cli.main import app
from inlet.config import Settings, mask_secrets, mask_text, secret_values
from inlet.logs import SecretFilter, install_secret_filter

SECRETS = {
    "INLET_RUCIO__PASSWORD": "rucio-pw-4f1a",
    "INLET_BROKER__PASSWORD": "broker-pw-9c2d",
    "INLET_S3__ACCESS_KEY": "AKIAEXAMPLEKEY77",
    "INLET_S3__SECRET_KEY": "s3-secret-5e8b",
    "INLET_REDIS__URL": "redis://:redis-pw-0a7e@127.0.0.1:26379/0",
    "INLET_CATALOG__URL": "mysql+pymysql://inlet:maria-pw-3b6c@db.example/inlet",
    "INLET_LISTENER__ALARMS__WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/slack-token-7d21",
}
VALUES = ["rucio-pw-4f1a", "broker-pw-9c2d", "AKIAEXAMPLEKEY77", "s3-secret-5e8b", "redis-pw-0a7e", "maria-pw-3b6c"]
VALUES += ["slack-token-7d21", "T000/B000"]


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INLET_CONFIG", raising=False)
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)


def test_config_show_prints_no_secret(secret_env: None) -> None:
    res = CliRunner().invoke(app, ["config", "show"])
    assert res.exit_code == 0, res.output
    leaked = [v for v in VALUES if v in res.output]
    assert leaked == []
    shown = json.loads(res.output)
    # What is not secret stays readable: hosts, users, the webhook's host.
    assert shown["catalog"]["url"] == "mysql+pymysql://inlet:***@db.example/inlet"
    assert shown["redis"]["url"] == "redis://:***@127.0.0.1:26379/0"
    assert shown["listener"]["alarms"]["webhook_url"] == "https://hooks.slack.com/***"
    assert shown["rucio"]["username"] == "inlet"


def test_config_show_masks_every_secret_named_field(secret_env: None) -> None:
    shown = json.loads(CliRunner().invoke(app, ["config", "show"]).output)
    assert shown["s3"]["access_key"] == shown["s3"]["secret_key"] == shown["broker"]["password"] == "***"


def test_mask_secrets_covers_nested_options_and_lists() -> None:
    data = {"routes": [{"options": {"api_token": "tok-123456", "url": "postgresql+psycopg://u:pg-pw-1@h/db"}}]}
    assert mask_secrets(data) == {
        "routes": [{"options": {"api_token": "***", "url": "postgresql+psycopg://u:***@h/db"}}]
    }


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connecting to mysql+pymysql://u:pw-mysql-1@h/db", "pw-mysql-1"),
        ("broker redis://:pw-redis-1@h:6379/0 down", "pw-redis-1"),
        ("engine postgresql+psycopg://rucio:pw-pg-1@127.0.0.1:1/rucio", "pw-pg-1"),
        ("posting to https://chat.example/hooks/mm-token-1", "mm-token-1"),
        ("posting to https://discord.com/api/webhooks/123/dc-token-1", "dc-token-1"),
        ("GET https://s3/b/k?X-Amz-Credential=AKIA1&X-Amz-Signature=sig-abc1 200", "sig-abc1"),
    ],
)
def test_mask_text_patterns(text: str, secret: str) -> None:
    assert secret not in mask_text(text)


def test_known_secret_values_come_from_the_settings(secret_env: None) -> None:
    known = secret_values(Settings())
    assert {"rucio-pw-4f1a", "broker-pw-9c2d", "s3-secret-5e8b", "redis-pw-0a7e", "maria-pw-3b6c"} <= known
    assert "services/T000/B000/slack-token-7d21" in known


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("cannot connect to mysql+pymysql://u:pw-in-tb-9@h/db")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args or None, exc_info)


def test_filter_masks_url_password_in_message_and_args() -> None:
    filt = SecretFilter()
    rec = _record("engine %s ready", "postgresql+psycopg://rucio:pw-args-7@127.0.0.1/rucio")
    filt.filter(rec)
    assert "pw-args-7" not in rec.getMessage() and "rucio:***@127.0.0.1" in rec.getMessage()


def test_filter_masks_known_values_and_tracebacks() -> None:
    filt = SecretFilter({"the-broker-pass"})
    rec = _record("login failed with %r", "the-broker-pass", exc=True)
    filt.filter(rec)
    text = logging.Formatter().format(rec)
    assert "the-broker-pass" not in text and "pw-in-tb-9" not in text and "RuntimeError" in text


def test_every_log_record_of_the_process_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    install_secret_filter({"known-secret-42"})
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("inlet.test").info("url %s key %s", "redis://:pw-any-5@h:1/0", "known-secret-42")
        assert "pw-any-5" not in caplog.text and "known-secret-42" not in caplog.text
        assert "redis://:***@h:1/0" in caplog.text
    finally:
        install_secret_filter(set())


def test_masking_survives_a_later_logging_reconfiguration() -> None:
    # `inlet daemon` re-runs basicConfig(force=True) after the CLI's set-up: records stay masked.
    import io

    install_secret_filter({"known-secret-43"})
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        logging.basicConfig(level=logging.INFO, stream=out, force=True)
        logging.getLogger("inlet.daemon").warning("db %s", "postgresql+psycopg://rucio:pw-pg-9@h/rucio known-secret-43")
        assert "pw-pg-9" not in out.getvalue() and "known-secret-43" not in out.getvalue()
        assert "rucio:***@h/rucio" in out.getvalue()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        install_secret_filter(set())


def test_uploader_worker_masks_its_log_records() -> None:
    """Celery workers log through Celery's handlers, not inlet's set-up; the app masks anyway."""
    import os
    import subprocess
    import sys

    code = (
        "import logging, sys; logging.basicConfig(stream=sys.stdout)\n"
        "import inlet.uploader.celery_app\n"
        "logging.getLogger('worker').warning('broker redis://:Wk3rSecretPw@127.0.0.1:1/0 auth Wk3rSecretPw')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INLET_")}
    env["INLET_REDIS__URL"] = "redis://:Wk3rSecretPw@127.0.0.1:1/0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "broker redis://" in out.stdout
    assert "Wk3rSecretPw" not in out.stdout + out.stderr
