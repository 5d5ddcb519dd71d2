"""S3 access for Rucio: a boto3 protocol class, so Rucio's own clients read and write the S3 RSE.

The route, and why
------------------
The S3 RSE is declared with scheme ``http`` (``https`` for a TLS endpoint) and
``impl = rucio_inlet.s3.Default``. Its PFNs are then plain path-style S3 URLs,
``http://host:port/bucket/scope/xx/yy/name``, and:

* ``rucio upload --rse S3`` and ``rucio download`` work unchanged: Rucio's server only hands
  out PFNs of the schemes it knows (``s3`` is not one of them, which is why Rucio's download
  client "rejects" an ``s3://`` RSE), and the client then loads the RSE protocol's ``impl``,
  this class, which signs every request with SigV4 through boto3;
* the alternative Rucio documents, ``https`` plus RSE attribute ``sign_url=s3``, needs a TLS
  endpoint and pre-signed URLs fetched from the server for every file (credentials in the
  server's rse-accounts.cfg); the local endpoint (moto) speaks plain HTTP, and one REST round
  trip per file to get a URL is a cost the fast path does not need;
* gfal2 (the transfertool) gets the same object as ``s3://host:port/bucket/key`` through
  :meth:`S3Protocol.gfal2_url`, with the same credentials (:meth:`S3Protocol.gfal2_options`).
  Rucio's path finder does not pair ``file`` with ``http`` on its own: the conveyor process
  extends Rucio's scheme map when it registers the transfertool
  (:func:`rucio_inlet.transfertool.register`), nowhere else.

Uploads stream the file once through :class:`~rucio_inlet.checksums.ChecksumReader`:
adler32 and md5 are computed on the fly, multipart from ``MULTIPART_THRESHOLD`` (64 MiB) on; the ETag the
endpoint returns is compared with the one the bytes should have, and adler32/md5 are stored as
object metadata so that :meth:`S3Protocol.stat` (used by Rucio's upload client to verify) and
later audits get Rucio's own checksums back.

Credentials, first found wins (never logged):

1. Rucio's ``rse-accounts.cfg`` entry for the RSE (``access_key``, ``secret_key``, ``region``),
   searched where Rucio searches it and next to ``RUCIO_CONFIG``;
2. ``INLET_S3__ACCESS_KEY`` / ``INLET_S3__SECRET_KEY`` / ``INLET_S3__REGION``;
3. boto3's own chain (``AWS_ACCESS_KEY_ID``..., ``~/.aws``, instance roles).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from rucio.common import exception as rucio_exc
from rucio.rse.protocols.protocol import RSEProtocol

from rucio_inlet.checksums import ChecksumReader
from rucio_inlet.confine import relative_inside

log = logging.getLogger(__name__)

#: Above this size uploads go multipart; also the part size (S3's minimum part is 5 MiB).
MULTIPART_THRESHOLD = 64 * 2**20
MULTIPART_CHUNK = 8 * 2**20
#: S3 refuses a single CopyObject above 5 GiB: bigger objects keep only their ETag.
MAX_COPY_OBJECT = 5 * 2**30
#: Parts of one multipart upload in flight at once.
UPLOAD_CONCURRENCY = 8


@dataclass(frozen=True)
class S3Credentials:
    access_key: str | None
    secret_key: str | None
    region: str
    source: str  # where they came from, for error messages; never the values

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"S3Credentials(source={self.source!r}, region={self.region!r})"


class S3ConfigError(rucio_exc.RucioException):  # type: ignore[misc]
    """The S3 RSE cannot be reached as configured; the message names the fix."""


def _rse_accounts_files() -> list[Path]:
    dirs = [Path(os.environ[v]) / "etc" for v in ("RUCIO_HOME", "VIRTUAL_ENV", "CONDA_PREFIX") if v in os.environ]
    if os.environ.get("RUCIO_CONFIG"):
        dirs.insert(0, Path(os.environ["RUCIO_CONFIG"]).parent)
    dirs.append(Path("/opt/rucio/etc"))
    return [d / "rse-accounts.cfg" for d in dirs]


def credentials_for(rse: str) -> S3Credentials:
    for path in _rse_accounts_files():
        if not path.is_file():
            continue
        try:
            entry = json.loads(path.read_text()).get(rse)
        except ValueError as exc:
            raise S3ConfigError(f"{path} is not valid JSON ({exc}): fix or remove it") from exc
        if entry:
            if not entry.get("access_key") or not entry.get("secret_key"):
                raise S3ConfigError(f"{path}: the entry for RSE {rse} needs both 'access_key' and 'secret_key'")
            return S3Credentials(entry["access_key"], entry["secret_key"], entry.get("region", "us-east-1"), str(path))
    key, secret = os.environ.get("INLET_S3__ACCESS_KEY"), os.environ.get("INLET_S3__SECRET_KEY")
    region = os.environ.get("INLET_S3__REGION", "us-east-1")
    if key and secret:
        return S3Credentials(key, secret, region, "INLET_S3__* environment")
    return S3Credentials(None, None, region, "boto3 default chain")


_clients: dict[tuple[str, str | None, str], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint: str, creds: S3Credentials) -> Any:
    """A cached boto3 client (they are thread-safe, and building one costs ~50 ms)."""
    key = (endpoint, creds.access_key, creds.region)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=creds.region,
                aws_access_key_id=creds.access_key,
                aws_secret_access_key=creds.secret_key,
                config=BotoConfig(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=32,
                    connect_timeout=5,
                    # Rucio verifies adler32/md5 itself; boto3's newer default CRC32 checksums are not
                    # kept by every S3 implementation (moto keeps a stale one after CopyObject).
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
            _clients[key] = client
        return client


def split_pfn(pfn: str) -> tuple[str, str, str]:
    """``http://host:port/bucket/key`` -> (endpoint URL, bucket, key)."""
    url = urlparse(pfn)
    bucket, _, key = url.path.lstrip("/").partition("/")
    if not url.scheme or not url.netloc or not bucket or not key:
        raise rucio_exc.RSEFileNameNotSupported(f"{pfn!r} is not a path-style S3 URL (scheme://host:port/bucket/key)")
    return f"{url.scheme}://{url.netloc}", bucket, key


def _translate(err: Exception, what: str, creds: S3Credentials) -> Any:
    if isinstance(err, NoCredentialsError):
        return S3ConfigError(
            f"{what}: no S3 credentials found (looked in rse-accounts.cfg, INLET_S3__*, boto3 chain); "
            "add an entry for the RSE to rse-accounts.cfg next to RUCIO_CONFIG"
        )
    if isinstance(err, EndpointConnectionError):
        return rucio_exc.ServiceUnavailable(f"{what}: S3 endpoint unreachable ({err})")
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return rucio_exc.SourceNotFound(f"{what}: no such object")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return rucio_exc.RSEAccessDenied(
                f"{what}: the S3 endpoint refused the credentials from {creds.source} ({code})"
            )
        return rucio_exc.ServiceUnavailable(f"{what}: {code or err}")
    return rucio_exc.ServiceUnavailable(f"{what}: {err}")


class S3Protocol(RSEProtocol):  # type: ignore[misc]
    """Rucio RSE protocol for an S3 bucket, on boto3."""

    def __init__(self, protocol_attr: dict[str, Any], rse_settings: dict[str, Any], logger: Any = log.log) -> None:
        super().__init__(protocol_attr, rse_settings, logger=logger)
        # S3 has no rename (it is a copy plus a delete): write straight to the final key.
        self.renaming = False
        self.attributes.pop("determinism_type", None)
        self.creds = credentials_for(rse_settings["rse"])
        port = self.attributes.get("port") or 0
        host = self.attributes["hostname"]
        self.endpoint = f"{self.attributes['scheme']}://{host}{f':{port}' if port else ''}"

    # -- helpers -------------------------------------------------------------------------
    def _client(self) -> Any:
        return s3_client(self.endpoint, self.creds)

    def _locate(self, pfn: str) -> tuple[str, str]:
        """(bucket, key) of a PFN of this RSE; OutsideRSE for another bucket or a key that could escape it.

        S3 keys are flat strings, but HTTP clients, gfal2 and some endpoints normalise ``..`` in
        URL paths, so a key with such a segment could name an object of another bucket.
        """
        relative_inside(self.attributes["prefix"], pfn, self.rse.get("rse", "?"))
        _, bucket, key = split_pfn(pfn)
        return bucket, key

    def gfal2_url(self, pfn: str) -> str:
        """The URL gfal2 uses for this object: its S3 plugin, same host and path."""
        url = urlparse(pfn)
        return url._replace(scheme="s3s" if url.scheme == "https" else "s3").geturl()

    def gfal2_options(self) -> list[tuple[str, str, str | bool]]:
        """gfal2 context options that give its S3 plugin our credentials (path-style addressing)."""
        opts: list[tuple[str, str, str | bool]] = [("S3", "ALTERNATE", True), ("S3", "REGION", self.creds.region)]
        if self.creds.access_key and self.creds.secret_key:
            opts += [("S3", "ACCESS_KEY", self.creds.access_key), ("S3", "SECRET_KEY", self.creds.secret_key)]
        return opts

    # -- RSEProtocol ---------------------------------------------------------------------
    def connect(self) -> None:
        self._client()

    def close(self) -> None:
        pass

    def path2pfn(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.endpoint}{path if path.startswith('/') else '/' + path}"

    def exists(self, path: str | None) -> bool:
        if path is None:
            return False
        try:
            self.stat(path)
            return True
        except rucio_exc.SourceNotFound:
            return False

    def stat(self, path: str) -> dict[str, Any]:
        bucket, key = self._locate(path)
        try:
            head = self._client().head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            raise _translate(err, f"stat {path}", self.creds) from err
        out: dict[str, Any] = {"filesize": int(head["ContentLength"])}
        meta = head.get("Metadata", {})
        etag = str(head.get("ETag", "")).strip('"')
        if meta.get("adler32"):
            out["adler32"] = meta["adler32"]
        if meta.get("md5"):
            out["md5"] = meta["md5"]
        elif etag and "-" not in etag:
            out["md5"] = etag  # a single-part ETag is the md5 of the bytes
        return out

    def get(self, path: str, dest: str, transfer_timeout: int | None = None) -> None:
        bucket, key = self._locate(path)
        try:
            self._client().download_file(
                bucket, key, dest, Config=TransferConfig(multipart_chunksize=MULTIPART_CHUNK, max_concurrency=8)
            )
        except (ClientError, BotoCoreError) as err:
            raise _translate(err, f"download {path}", self.creds) from err

    def put(self, source: str, target: str, source_dir: str | None = None, transfer_timeout: int | None = None) -> None:
        local = os.path.join(source_dir, source) if source_dir else source
        if not os.path.isfile(local):
            raise rucio_exc.SourceNotFound(f"upload: local file {local} does not exist")
        self._locate(target)
        upload_file_verified(self._client(), local, target, self.creds)

    def delete(self, path: str) -> None:
        bucket, key = self._locate(path)
        if not self.exists(path):
            raise rucio_exc.SourceNotFound(f"delete {path}: no such object")
        try:
            self._client().delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            raise _translate(err, f"delete {path}", self.creds) from err

    def rename(self, path: str, new_path: str) -> None:
        raise rucio_exc.RSEOperationNotSupported("S3 objects cannot be renamed: this protocol writes final keys")


def upload_file_verified(client: Any, local: str, pfn: str, creds: S3Credentials) -> dict[str, str]:
    """Stream ``local`` to ``pfn`` once, with checksums on the fly, and prove the endpoint got those bytes.

    Small files: one PUT carrying Content-MD5 (the endpoint checks it) and Rucio's checksums as
    metadata, both known because the file is read before it is sent. Large files: the file is
    read strictly in order, part by part (checksums on the fly), while up to
    ``UPLOAD_CONCURRENCY`` parts are in flight; each part carries its Content-MD5; the final
    ETag is checked against the one the parts give, then a server-side copy attaches the
    metadata. Returns {"adler32", "md5", "etag"}; raises Rucio's ``DestinationNotAccessible``
    (after deleting the object) if the endpoint holds other bytes than those read.
    """
    _, bucket, key = split_pfn(pfn)
    size = os.path.getsize(local)
    try:
        with open(local, "rb") as fh:
            reader = ChecksumReader(fh, part_size=MULTIPART_CHUNK)
            if size < MULTIPART_THRESHOLD:
                data = reader.read()
                client.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=data,
                    ContentMD5=base64.b64encode(bytes.fromhex(reader.md5)).decode(),
                    Metadata={"adler32": reader.adler32, "md5": reader.md5},
                )
            else:
                _multipart(client, reader, bucket, key)
        if reader.bytes_read != size:
            client.delete_object(Bucket=bucket, Key=key)
            raise rucio_exc.DestinationNotAccessible(
                f"upload {pfn}: read {reader.bytes_read} bytes but the file has {size}: it changed during upload"
            )
        etag = str(client.head_object(Bucket=bucket, Key=key).get("ETag", "")).strip('"')
        expected = reader.expected_etag()
        if etag != expected:
            client.delete_object(Bucket=bucket, Key=key)
            raise rucio_exc.DestinationNotAccessible(
                f"upload {pfn}: the endpoint stored ETag {etag}, the bytes sent give {expected}; object deleted"
            )
        if size >= MULTIPART_THRESHOLD and size <= MAX_COPY_OBJECT:
            # Server-side: no byte is sent again. It gives stat() Rucio's adler32 back.
            client.copy_object(
                Bucket=bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": key},
                Metadata={"adler32": reader.adler32, "md5": reader.md5},
                MetadataDirective="REPLACE",
            )
    except (ClientError, BotoCoreError) as err:
        raise _translate(err, f"upload {pfn}", creds) from err
    return {"adler32": reader.adler32, "md5": reader.md5, "etag": etag}


def _multipart(client: Any, reader: ChecksumReader, bucket: str, key: str) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    # Bounds the parts held in memory: read-ahead stops while this many are unsent.
    slots = threading.BoundedSemaphore(UPLOAD_CONCURRENCY + 1)

    def send(number: int, data: bytes, md5: bytes) -> dict[str, Any]:
        try:
            digest = base64.b64encode(md5).decode()
            res = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=digest
            )
            return {"PartNumber": number, "ETag": res["ETag"]}
        finally:
            slots.release()

    try:
        futures = []
        with ThreadPoolExecutor(UPLOAD_CONCURRENCY, thread_name_prefix="s3-part") as pool:
            number = 1
            while True:
                slots.acquire()
                data = reader.read(MULTIPART_CHUNK)
                if not data:
                    slots.release()
                    break
                # The reader already hashed this part on the way (the last one is still open).
                full = len(data) == MULTIPART_CHUNK and len(reader.part_digests) == number
                md5 = reader.part_digests[-1] if full else hashlib.md5(data, usedforsecurity=False).digest()
                futures.append(pool.submit(send, number, data, md5))
                number += 1
            parts = [f.result() for f in futures]
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


#: Rucio loads ``impl`` by module and class name; ``Default`` is its convention.
Default = S3Protocol
