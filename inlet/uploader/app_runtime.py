"""Per-process singletons of a worker: settings, Redis, pacing, the Uploader.

Rucio reads ``RUCIO_CONFIG`` once, at its first import, so the environment is prepared here
before anything imports Rucio: an explicit ``[rucio] config`` wins, else the local lake's.
"""

from __future__ import annotations

import functools
import os

import redis

from inlet.config import Settings, load_settings
from inlet.uploader.pacing import RseSlots, TokenBucket


def prepare_rucio_env(settings: Settings) -> None:
    # The uploader is a Rucio client, always: with a rucio.cfg that has a [database] section (the
    # lake's, a server's) Rucio would otherwise run its storage layer in server mode, straight
    # against the database, with a connection pool that must not cross the worker pool's fork.
    os.environ.setdefault("RUCIO_CLIENT_MODE", "1")
    if os.environ.get("RUCIO_CONFIG"):
        return
    if settings.rucio.config is not None:
        os.environ["RUCIO_CONFIG"] = str(settings.rucio.config)
        return
    from inlet.lake.lake import Lake

    for key, value in Lake(settings).rucio_client_env().items():
        os.environ.setdefault(key, value)
    tmp = os.environ.get("TMPDIR")
    if tmp:
        os.makedirs(tmp, exist_ok=True)


@functools.cache
def settings() -> Settings:
    s = load_settings()
    prepare_rucio_env(s)
    return s


@functools.cache
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def bucket(s: Settings) -> TokenBucket:
    u = s.uploader
    return TokenBucket(redis_client(s.redis.url), u.files_per_second, u.bytes_per_second, u.burst_files, u.burst_bytes)


def slots(s: Settings) -> RseSlots:
    return RseSlots(redis_client(s.redis.url), s.uploader.rse_concurrency)
