"""Protocol objects of test RSEs, built the way Rucio's rsemanager builds them (nothing is contacted)."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def s3_protocol(s3: ModuleType, scheme: str = "http") -> Any:
    """The S3 protocol of an RSE "S3" on 127.0.0.1:29000, bucket "bucket" (never contacted here)."""
    attrs = {
        "scheme": scheme,
        "hostname": "127.0.0.1",
        "port": 29000,
        "prefix": "/bucket/",
        "impl": "rucio_inlet.s3.Default",
        "domains": {},
        "extended_attributes": None,
        "auth_token": None,
    }
    rse = {"rse": "S3", "id": "x", "deterministic": False, "protocols": [], "lfn2pfn_algorithm": "hash"}
    return s3.S3Protocol(attrs, rse)
