"""The lake's Redis requires the password of [redis] url, kept in a 0600 file and off the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from inlet.config import LakeSettings, RedisSettings, Settings
from inlet.lake.errors import LakeError
from inlet.lake.services.base import LakePaths
from inlet.lake.services.redis import Redis, masked_url, redis_password


def _svc(tmp_path: Path, url: str) -> Redis:
    s = Settings(lake=LakeSettings(state_dir=tmp_path, redis_server="/bin/true"), redis=RedisSettings(url=url))
    return Redis(s, LakePaths(tmp_path))


def test_the_password_is_in_a_0600_file_not_on_the_command_line(tmp_path: Path) -> None:
    svc = _svc(tmp_path, "redis://:s3cr%40t%22x@127.0.0.1:26379/0")
    argv = svc.argv()
    assert not any("s3cr" in a for a in argv)
    conf = Path(argv[-1])
    assert conf.stat().st_mode & 0o777 == 0o600
    text = conf.read_text()
    assert 'requirepass "s3cr@t\\"x"' in text and "port 26379" in text and "appendonly yes" in text


def test_a_url_without_password_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(LakeError) as err:
        _svc(tmp_path, "redis://127.0.0.1:26379/0").argv()
    assert "no password" in err.value.problem and "redis://:PASSWORD@" in err.value.fix


def test_status_and_errors_never_show_the_password(tmp_path: Path) -> None:
    assert _svc(tmp_path, "redis://:topsecret@127.0.0.1:26379/0").endpoint == "redis://:***@127.0.0.1:26379/0"
    assert masked_url("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"
    assert redis_password("redis://:a%2Fb@h:1/0") == "a/b"


def test_the_default_url_carries_the_lakes_password() -> None:
    assert redis_password(Settings().redis.url)
