"""An S3 endpoint on loopback: moto's server, which speaks the S3 REST API over HTTP.

moto pins a jsonschema that clashes with rucio's, so it lives in its own venv (.venv-s3,
made by scripts/setup.sh) and runs as its own process. moto keeps objects in memory: a
``lake down`` forgets S3 contents (see README, "Known limits").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import requests
from botocore.config import Config as BotoConfig

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, require_executable

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class S3Endpoint(Service):
    name = "s3"
    port_setting = "[s3] endpoint / INLET_S3__ENDPOINT"

    @property
    def port(self) -> int:
        port = urlparse(self.settings.s3.endpoint).port
        if port is None:
            raise LakeError(
                f"s3: [s3] endpoint {self.settings.s3.endpoint!r} has no port",
                "give the embedded endpoint an explicit port, e.g. http://127.0.0.1:29000",
            )
        return port

    @property
    def endpoint(self) -> str:
        return self.settings.s3.endpoint

    def argv(self) -> list[str]:
        exe = self.settings.lake.s3_server or str(PROJECT_ROOT / ".venv-s3" / "bin" / "moto_server")
        exe = require_executable(exe, self.name, "run scripts/setup.sh (creates .venv-s3 with moto[server])")
        return [exe, "-H", "127.0.0.1", "-p", str(self.port)]

    def env(self) -> dict[str, str]:
        s3 = self.settings.s3
        return {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}

    def ready(self) -> bool:
        try:
            # An S3 ListBuckets answer. Not moto's /moto-api/data.json: that dump fails (500) for
            # good once a multipart upload has left part objects behind.
            res = requests.get(f"{self.endpoint}/", timeout=2)
            return bool(res.status_code == 200 and b"ListAllMyBucketsResult" in res.content)
        except requests.RequestException:
            return False

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (the lake's bucket set-up and its tests use it)."""
        s3 = self.settings.s3
        return boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=s3.region,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            config=BotoConfig(retries={"max_attempts": 3}),
        )

    def after_start(self) -> None:
        client = self.client()
        bucket = self.settings.s3.bucket
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in names:
            client.create_bucket(Bucket=bucket)
