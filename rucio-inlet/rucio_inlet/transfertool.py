"""A Rucio transfertool that copies with gfal2: real bytes for sites (and a local lake) without FTS.

How it fits Rucio's conveyor
----------------------------
Rucio's submitter hands :meth:`Gfal2Transfertool.submit` a batch of transfers and stores the
returned job id; its poller later calls :meth:`Gfal2Transfertool.bulk_query`; its finisher
turns DONE into an AVAILABLE replica and FAILED into a retry (``transfer-done`` /
``transfer-failed`` go to hermes on the way). The copies themselves run in a process-wide
:class:`CopyEngine`: one bounded thread pool per (source RSE, destination RSE) link, so one
slow link never starves the others. Submitter and poller must therefore share the process,
which is what ``inlet daemon conveyor`` does; a job id this process does not know (the
conveyor restarted) is reported lost, and Rucio requeues it.

Checksums are checked with the algorithm each storage has (the RSE attribute
``supported_checksums``, else adler32 on POSIX-like storage and md5 on S3): the destination is
compared with Rucio's catalogue value (gfal2's own ``target`` mode on POSIX, the object's md5 on
S3) and, only when that fails, the source too, so the reason says which side is corrupt
(``SOURCE CHECKSUM MISMATCH`` / ``DESTINATION CHECKSUM MISMATCH``); a bad destination is deleted.
A matching destination proves the source delivered the registered bytes: reading the source a
second time would double the cost of every copy for a check that could only agree.
A failed hop reports gfal2's own reason, so Rucio's retry policy and suspicious-replica
patterns apply unchanged.

Every source and destination must lie inside its RSE's protocol prefix (the bucket on S3) as a
plain relative path (:mod:`rucio_inlet.confine`); otherwise the hop fails with
``DESTINATION OUTSIDE RSE`` / ``SOURCE OUTSIDE RSE`` and the reason, and gfal2 is never called
for it (no byte copied, no directory created).

Tape sources (``rse_type`` TAPE) are "recalled" before the copy: a POSIX-backed tape has
nothing to stage, so a configurable delay (``[conveyor] gfal2_tape_recall_delay`` or the RSE
attribute ``recall_delay``, seconds) stands in for the mount, and Rucio's staging timestamps
are filled in.

Configuration, all in rucio.cfg ``[conveyor]``: ``transfertool = gfal2`` selects it;
``gfal2_link_concurrency`` (parallel copies per link, default 4), ``gfal2_transfer_timeout``
(s, default 3600), ``gfal2_tape_recall_delay`` (s, default 0).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import itertools
import logging
import mmap
import os
import socket
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import gfal2
from rucio.common.config import config_get_int
from rucio.core.request import get_transfer_error
from rucio.db.sqla.constants import RequestState
from rucio.transfertool.transfertool import TransferStatusReport, Transfertool, TransferToolBuilder

from rucio_inlet.checksums import same_adler32
from rucio_inlet.confine import OutsideRSE, relative_inside

log = logging.getLogger(__name__)

GfalOption = tuple[str, str, "str | bool | int"]


def _utcnow() -> datetime.datetime:
    # Rucio's request columns are naive UTC datetimes.
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# -- what one copy needs, detached from Rucio's session-bound objects ---------------------
@dataclass(frozen=True)
class Endpoint:
    rse: str
    rse_id: str
    url: str  # as gfal2 addresses it (s3:// for S3 RSEs)
    pfn: str  # as Rucio names it
    algorithm: str  # ADLER32 or MD5
    is_tape: bool = False
    recall_delay: float = 0.0
    #: stat() of the RSE's own protocol when it knows checksums gfal2 cannot see (S3 metadata).
    stat: Any = None
    #: The RSE protocol's prefix (a directory, or /bucket/ on S3): the copy never leaves it.
    prefix: str = ""


@dataclass(frozen=True)
class Hop:
    request_id: str
    did: str
    sources: tuple[Endpoint, ...]
    dst: Endpoint
    size: int | None
    adler32: str | None
    md5: str | None
    options: tuple[GfalOption, ...]
    timeout: int


@dataclass
class HopResult:
    state: RequestState
    reason: str = ""
    source: Endpoint | None = None
    dst: Endpoint | None = None
    started_at: datetime.datetime | None = None
    transferred_at: datetime.datetime | None = None
    staging_started_at: datetime.datetime | None = None
    staging_finished_at: datetime.datetime | None = None
    checksum: str = ""


@dataclass
class Job:
    eid: str
    request_ids: list[str]
    futures: list[Future[None]] = field(default_factory=list)
    results: dict[str, HopResult] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)


class CopyFailed(Exception):
    """One source could not be copied; ``source_side`` tells whether another source may help."""

    def __init__(self, reason: str, source_side: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source_side = source_side


# -- gfal2 --------------------------------------------------------------------------------
_tls = threading.local()


def gfal2_context(options: tuple[GfalOption, ...]) -> Any:
    """A gfal2 context per thread and option set: contexts hold per-copy state and are cheap."""
    cache: dict[tuple[GfalOption, ...], Any] = getattr(_tls, "contexts", None) or {}
    _tls.contexts = cache
    ctx = cache.get(options)
    if ctx is None:
        ctx = gfal2.creat_context()
        for group, key, value in options:
            if isinstance(value, bool):
                ctx.set_opt_boolean(group, key, value)
            elif isinstance(value, int):
                ctx.set_opt_integer(group, key, value)
            else:
                ctx.set_opt_string(group, key, value)
        cache[options] = ctx
    return ctx


def _gerror(err: Exception) -> str:
    msg = getattr(err, "message", None) or str(err)
    return " ".join(str(msg).split())


def checksum_of(ctx: Any, end: Endpoint, algorithm: str) -> str:
    """The storage's checksum of an object; S3 metadata first (gfal2 only sees single-part ETags)."""
    if end.stat is not None:
        try:
            stats = end.stat(end.pfn)
        except Exception as err:  # any storage error is a failed check
            raise CopyFailed(f"cannot stat {end.pfn}: {err}", source_side=False) from err
        value = stats.get(algorithm.lower())
        if value:
            return str(value)
    try:
        return str(ctx.checksum(end.url, algorithm))
    except gfal2.GError as err:
        raise CopyFailed(f"{algorithm} checksum of {end.url}: {_gerror(err)}", source_side=False) from err


def _matches(algorithm: str, a: str, b: str) -> bool:
    return same_adler32(a, b) if algorithm == "ADLER32" else a.lower() == b.lower()


def outside_reason(end: Endpoint, side: str) -> str | None:
    """Why ``end`` is not inside its RSE (both the Rucio PFN and the URL gfal2 is given), or None."""
    if not end.prefix:
        return None
    try:
        for location in dict.fromkeys((end.pfn, end.url)):
            relative_inside(end.prefix, location, end.rse)
    except OutsideRSE as exc:
        return f"{side} OUTSIDE RSE {exc.args[0]}"
    return None


def copy_hop(hop: Hop) -> HopResult:
    """Copy one file, trying its sources in order; never raises.

    A destination or source outside its RSE's prefix is refused before gfal2 touches anything
    (no copy, no parent directory created): Rucio's conveyor runs with the rights of the
    storage, so a hostile DID name must not choose where it writes or what it reads.
    """
    ctx = gfal2_context(hop.options)
    last = HopResult(RequestState.FAILED, reason="no source")
    refused = outside_reason(hop.dst, "DESTINATION")
    if refused is not None:
        log.error("transfer of %s refused: %s", hop.did, refused)
        return HopResult(RequestState.FAILED, reason=refused, dst=hop.dst, transferred_at=_utcnow())
    for src in hop.sources:
        result = HopResult(RequestState.FAILED, source=src, dst=hop.dst)
        refused = outside_reason(src, "SOURCE")
        if refused is not None:
            log.error("source of %s refused: %s", hop.did, refused)
            result.reason = refused
            last = result
            continue  # another source may be inside its RSE
        try:
            if src.is_tape:
                result.staging_started_at = _utcnow()
                if src.recall_delay > 0:
                    time.sleep(src.recall_delay)
                try:
                    ctx.stat(src.url)
                except gfal2.GError as err:
                    raise CopyFailed(f"STAGING: {src.url}: {_gerror(err)}", source_side=True) from err
                result.staging_finished_at = _utcnow()
            result.started_at = _utcnow()
            result.checksum = _copy_verified(ctx, hop, src)
            result.transferred_at = _utcnow()
            result.state = RequestState.DONE
            return result
        except CopyFailed as err:
            result.reason = err.reason
            result.transferred_at = _utcnow()
            last = result
            if not err.source_side:
                break
        except Exception as err:  # a bug here must fail the transfer, not the pool
            log.exception("unexpected error copying %s", hop.did)
            result.reason = f"internal error in the gfal2 transfertool: {err!r}"
            return result
    return last


def _copy_verified(ctx: Any, hop: Hop, src: Endpoint) -> str:
    """Copy, then prove the destination holds the catalogue's bytes; re-read the source only on a mismatch.

    A destination that matches Rucio's checksum proves the source delivered the registered
    bytes too, so the source is not read a second time for a check that could only agree
    (that pass costs as much as the copy). On a mismatch the source is checked, so the reason
    names the side at fault: ``SOURCE CHECKSUM MISMATCH`` (a corrupt replica) or
    ``DESTINATION CHECKSUM MISMATCH`` (the copy went wrong).
    """
    dst = hop.dst
    params = ctx.transfer_parameters()
    params.overwrite = True  # a retry must replace what a failed attempt left behind
    # Object stores have no directories: a parent "mkdir" there is a marker PUT that races
    # between parallel copies (moto answers 500), and is useless anyway.
    params.create_parent = dst.stat is None
    params.timeout = hop.timeout
    catalogue = {"ADLER32": hop.adler32, "MD5": hop.md5}
    want = catalogue[dst.algorithm]
    native = dst.stat is None and dst.algorithm == "ADLER32" and bool(want)
    if native and _local_path(src.url) and _local_path(dst.url):
        return _copy_local(ctx, hop, src)
    if native:
        # gfal2 checks the destination against the catalogue value itself.
        params.set_checksum(gfal2.checksum_mode.target, "ADLER32", want)
    try:
        ctx.filecopy(params, src.url, dst.url)
    except gfal2.GError as err:
        reason = _gerror(err)
        if "CHECKSUM MISMATCH" in reason.upper():
            _discard(ctx, dst)
            raise _mismatch(ctx, hop, src, reason) from err
        # gfal2 names the side in its message; a source-side error may succeed from another source.
        raise CopyFailed(reason, source_side="SOURCE" in reason.upper()) from err
    if native:
        _check_size(ctx, hop)
        return f"ADLER32:{want}"
    if not want:
        want = checksum_of(ctx, src, dst.algorithm)  # no catalogue value in this algorithm: ask the source
    got = checksum_of(ctx, dst, dst.algorithm)
    if not _matches(dst.algorithm, got, want):
        _discard(ctx, dst)
        raise _mismatch(ctx, hop, src, f"destination {dst.algorithm} {got} != expected {want}")
    _check_size(ctx, hop)
    return f"{dst.algorithm}:{got}"


#: Bytes read and written at a time by the POSIX-to-POSIX copy.
LOCAL_CHUNK = 8 << 20


def _local_path(url: str) -> str | None:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" and parsed.netloc in ("", "localhost") else None


def _copy_local(ctx: Any, hop: Hop, src: Endpoint) -> str:
    """POSIX to POSIX: the ADLER32 computed on the bytes as they are copied, in one pass.

    gfal2's file plugin copies, then reads the whole destination again for its checksum: two
    passes over the data where ``cp`` makes one. Here each chunk is summed and copied while it
    is in the page cache, so a sum that differs from the catalogue's means the source is bad
    (``_mismatch`` re-reads it to say so). The copy goes to a temporary name that replaces the
    destination only when complete.
    """
    sp, dp = _local_path(src.url), _local_path(hop.dst.url)
    assert sp is not None and dp is not None
    want = hop.adler32 or ""
    try:
        fin = open(sp, "rb")  # noqa: SIM115 - closed below, after the destination is settled
    except OSError as err:
        raise CopyFailed(f"SOURCE {sp}: {err.strerror}", source_side=True) from err
    with fin:
        folder = os.path.dirname(dp)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dp)}.", dir=folder)
        except OSError as err:
            raise CopyFailed(f"DESTINATION {dp}: {err.strerror}", source_side=False) from err
        try:
            with os.fdopen(fd, "wb", buffering=0) as fout:
                os.fchmod(fout.fileno(), 0o644)  # as gfal2 creates it (mkstemp makes 0600)
                value, size = _sum_and_copy(fin, fout, sp)
            os.replace(tmp, dp)
        except OSError as err:
            _unlink_quietly(tmp)
            raise CopyFailed(f"DESTINATION {dp}: {err.strerror}", source_side=False) from err
        except BaseException:
            _unlink_quietly(tmp)
            raise
    got = f"{value & 0xFFFFFFFF:08x}"
    if want and not same_adler32(got, want):
        _discard(ctx, hop.dst)
        raise _mismatch(ctx, hop, src, f"destination ADLER32 {got} != expected {want}")
    if hop.size is not None and size != hop.size:
        _discard(ctx, hop.dst)
        raise CopyFailed(
            f"DESTINATION SIZE MISMATCH {size} bytes != catalogue {hop.size}; destination deleted", source_side=False
        )
    return f"ADLER32:{got}"


def _sum_and_copy(fin: BinaryIO, fout: BinaryIO, src_path: str) -> tuple[int, int]:
    """ADLER32 and size of ``fin``, copied to ``fout`` chunk by chunk: each chunk is summed from
    a read-only mapping of the source (no copy into Python) and then copied by the kernel
    (``copy_file_range``) while it is in the page cache; a plain write where the kernel cannot."""
    try:
        size = os.fstat(fin.fileno()).st_size
        mapping = mmap.mmap(fin.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as err:
        raise CopyFailed(f"SOURCE {src_path}: {err.strerror}", source_side=True) from err
    value, off, in_kernel = 1, 0, True
    if mapping is None:
        return value, 0
    with mapping, memoryview(mapping) as view:
        while off < size:
            n = min(LOCAL_CHUNK, size - off)
            value = zlib.adler32(view[off : off + n], value)
            done = 0
            while done < n:
                if in_kernel:
                    try:
                        done += os.copy_file_range(fin.fileno(), fout.fileno(), n - done, off + done)
                        continue
                    except OSError as err:
                        if err.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                            raise
                        in_kernel = False
                done += fout.write(view[off + done : off + n]) or 0
            off += n
    return value, size


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _mismatch(ctx: Any, hop: Hop, src: Endpoint, detail: str) -> CopyFailed:
    """Name the corrupt side: the source if its own checksum disagrees with the catalogue."""
    want = {"ADLER32": hop.adler32, "MD5": hop.md5}[src.algorithm]
    if want:
        try:
            got = checksum_of(ctx, src, src.algorithm)
        except CopyFailed as err:
            return CopyFailed(f"DESTINATION CHECKSUM MISMATCH {detail}; source unreadable: {err.reason}", False)
        if not _matches(src.algorithm, got, want):
            return CopyFailed(
                f"SOURCE CHECKSUM MISMATCH Source and catalogue {src.algorithm} do not match: {got} != {want}",
                source_side=True,
            )
    return CopyFailed(f"DESTINATION CHECKSUM MISMATCH {detail}; destination deleted", source_side=False)


def _check_size(ctx: Any, hop: Hop) -> None:
    if hop.size is None:
        return
    try:
        size = int(ctx.stat(hop.dst.url).st_size)
    except gfal2.GError as err:
        raise CopyFailed(f"DESTINATION stat after copy: {_gerror(err)}", source_side=False) from err
    if size != hop.size:
        _discard(ctx, hop.dst)
        raise CopyFailed(
            f"DESTINATION SIZE MISMATCH {size} bytes != catalogue {hop.size}; destination deleted", source_side=False
        )


def _discard(ctx: Any, end: Endpoint) -> None:
    try:
        ctx.unlink(end.url)
    except gfal2.GError as err:
        log.warning("could not delete bad destination %s: %s", end.url, _gerror(err))


# -- the engine: jobs, per-link pools -----------------------------------------------------
class CopyEngine:
    """Runs copies in the background; one bounded pool per (source RSE, destination RSE) link."""

    #: Finished jobs are kept this long for the poller (it may re-poll after a DB error).
    KEEP_S = 3600.0

    def __init__(self, link_concurrency: int) -> None:
        self.link_concurrency = link_concurrency
        self._pools: dict[tuple[str, str], ThreadPoolExecutor] = {}
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def _pool(self, link: tuple[str, str]) -> ThreadPoolExecutor:
        with self._lock:
            pool = self._pools.get(link)
            if pool is None:
                pool = ThreadPoolExecutor(self.link_concurrency, thread_name_prefix=f"gfal2-{link[0]}-{link[1]}")
                self._pools[link] = pool
            return pool

    def submit(self, paths: list[list[Hop]]) -> str:
        eid = str(uuid.uuid4())
        job = Job(eid, [hop.request_id for path in paths for hop in path])
        with self._lock:
            self._prune()
            self._jobs[eid] = job
        for path in paths:
            first = path[0]
            link = (first.sources[0].rse, first.dst.rse)
            job.futures.append(self._pool(link).submit(self._run_path, job, path))
        return eid

    @staticmethod
    def _run_path(job: Job, path: list[Hop]) -> None:
        # Hops of a multi-hop path run in order: each one's destination is the next one's source.
        failed: HopResult | None = None
        for hop in path:
            if failed is not None:
                job.results[hop.request_id] = HopResult(
                    RequestState.FAILED, reason=f"previous hop failed: {failed.reason}", dst=hop.dst
                )
                continue
            result = copy_hop(hop)
            job.results[hop.request_id] = result
            if result.state != RequestState.DONE:
                failed = result

    def status(self, eid: str) -> dict[str, HopResult] | None:
        """Finished hops of a job; None if this process never saw the job."""
        with self._lock:
            job = self._jobs.get(eid)
        return None if job is None else dict(job.results)

    def cancel(self, eids: Sequence[str]) -> None:
        with self._lock:
            jobs = [self._jobs[e] for e in eids if e in self._jobs]
        for job in jobs:
            for fut in job.futures:
                fut.cancel()  # queued copies only: a running gfal2 copy finishes or times out
            for rid in job.request_ids:
                job.results.setdefault(rid, HopResult(RequestState.FAILED, reason="cancelled"))

    def _prune(self) -> None:
        now = time.monotonic()
        old = [e for e, j in self._jobs.items() if now - j.created > self.KEEP_S and all(f.done() for f in j.futures)]
        for eid in old:
            del self._jobs[eid]

    def futures(self) -> list[Future[None]]:
        """The copies of every job kept, finished or not (a poller woken by their completion reads them)."""
        with self._lock:
            return [f for j in self._jobs.values() for f in j.futures]

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted copy has finished; True if they all did in time."""
        with self._lock:
            futures = [f for j in self._jobs.values() for f in j.futures]
        deadline = None if timeout is None else time.monotonic() + timeout
        for fut in futures:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                fut.exception(timeout=left)
            except TimeoutError:
                return False
            except CancelledError:
                pass
        return True

    def shutdown(self) -> None:
        """Stop: queued copies are dropped (Rucio finds them lost and requeues), running ones finish."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


_engine: CopyEngine | None = None
_engine_lock = threading.Lock()


def engine() -> CopyEngine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = CopyEngine(config_get_int("conveyor", "gfal2_link_concurrency", False, 4))
        return _engine


# -- Rucio's interfaces -------------------------------------------------------------------
class Gfal2TransferStatusReport(TransferStatusReport):  # type: ignore[misc]
    supported_db_fields = [
        "state",
        "external_id",
        "started_at",
        "transferred_at",
        "staging_started_at",
        "staging_finished_at",
        "source_rse_id",
        "err_msg",
    ]

    def __init__(self, request_id: str, external_id: str, result: HopResult, external_host: str) -> None:
        super().__init__(request_id)
        self.result = result
        self.external_host = external_host
        self.state = result.state
        self.external_id = external_id
        self.started_at = result.started_at
        self.transferred_at = result.transferred_at
        self.staging_started_at = result.staging_started_at
        self.staging_finished_at = result.staging_finished_at
        self.source_rse_id = result.source.rse_id if result.source else None
        self.err_msg = get_transfer_error(result.state, result.reason) if result.state == RequestState.FAILED else None

    def initialize(self, session: Any, logger: Any = logging.log) -> None:
        pass  # everything is known from the copy itself

    def get_monitor_msg_fields(self, session: Any, logger: Any = logging.log) -> dict[str, Any]:
        r = self.result
        return {
            "transfer_link": f"gfal2://{self.external_host}/{self.external_id}",
            "reason": r.reason or None,
            "src-rse": r.source.rse if r.source else None,
            "src-url": r.source.pfn if r.source else None,
            "dst-rse": r.dst.rse if r.dst else None,
            "dst-url": r.dst.pfn if r.dst else None,
            "started_at": r.started_at,
            "transferred_at": r.transferred_at,
            "checksum": r.checksum or None,
        }

    def __str__(self) -> str:
        return f"gfal2 request {self.request_id} {self.state}"


def _algorithm(rse: Any, protocol: Any) -> str:
    declared = str(rse.attributes.get("supported_checksums") or "").lower().replace(" ", "").split(",")
    for algo in declared:
        if algo in ("adler32", "md5"):
            return algo.upper()
    return "MD5" if hasattr(protocol, "gfal2_url") else "ADLER32"


def gfal2_plain_url(pfn: str) -> str:
    """Rucio writes POSIX PFNs as ``file://localhost/path``; gfal2's file plugin wants ``file:///path``."""
    url = urlparse(pfn)
    if url.scheme == "file":
        return f"file://{url.path}"
    return pfn


def _endpoint(rse: Any, pfn: str, protocol: Any) -> tuple[Endpoint, tuple[GfalOption, ...]]:
    to_gfal = getattr(protocol, "gfal2_url", None)
    options = tuple(protocol.gfal2_options()) if hasattr(protocol, "gfal2_options") else ()
    delay = float(rse.attributes.get("recall_delay") or config_get_int("conveyor", "gfal2_tape_recall_delay", False, 0))
    end = Endpoint(
        rse=rse.name,
        rse_id=rse.id,
        url=to_gfal(pfn) if to_gfal else gfal2_plain_url(pfn),
        pfn=pfn,
        algorithm=_algorithm(rse, protocol),
        is_tape=bool(rse.is_tape()),
        recall_delay=delay,
        stat=protocol.stat if to_gfal else None,
        prefix=str(protocol.attributes.get("prefix") or "/"),
    )
    return end, options


def hop_from_transfer(transfer: Any, timeout: int) -> Hop:
    """Everything a copy needs, read from Rucio's DirectTransfer while its session is alive."""
    rws = transfer.rws
    dst, options = _endpoint(transfer.dst.rse, transfer.dest_url, transfer.dest_protocol())
    sources: list[Endpoint] = []
    all_options = list(options)
    for source in transfer.sources:
        end, opts = _endpoint(source.rse, transfer.source_url(source), transfer.source_protocol(source))
        sources.append(end)
        all_options += [o for o in opts if o not in all_options]
    return Hop(
        request_id=rws.request_id,
        did=f"{rws.scope}:{rws.name}",
        sources=tuple(sources),
        dst=dst,
        size=rws.byte_count,
        adler32=rws.adler32,
        md5=rws.md5,
        options=tuple(all_options),
        timeout=timeout,
    )


class Gfal2Transfertool(Transfertool):  # type: ignore[misc]
    """Rucio transfertool ``gfal2``: see the module docstring."""

    external_name = "gfal2"
    required_rse_attrs = ()
    supported_schemes = {"file", "http", "https", "davs", "root", "s3", "s3s", "srm", "gsiftp"}

    def __init__(self, external_host: str, logger: Any = logging.log) -> None:
        super().__init__(external_host, logger)

    @classmethod
    def submission_builder_for_path(
        cls, transfer_path: list[Any], logger: Any = logging.log
    ) -> tuple[list[Any], TransferToolBuilder]:
        return transfer_path, TransferToolBuilder(cls, external_host=f"gfal2@{socket.gethostname()}")

    def group_into_submit_jobs(self, transfer_paths: Iterable[list[Any]]) -> list[dict[str, Any]]:
        paths = [list(p) for p in transfer_paths]
        if not paths:
            return []
        # job_params carries the path lengths so submit() can rebuild multi-hop paths from the flat list.
        return [
            {
                "transfers": list(itertools.chain.from_iterable(paths)),
                "job_params": {"path_lengths": ",".join(str(len(p)) for p in paths)},
            }
        ]

    def submit(self, transfers: Iterable[Any], job_params: dict[str, str], timeout: int | None = None) -> str:
        flat = list(transfers)
        lengths = [int(n) for n in job_params.get("path_lengths", "").split(",") if n] or [1] * len(flat)
        copy_timeout = config_get_int("conveyor", "gfal2_transfer_timeout", False, 3600)
        hops = [hop_from_transfer(t, copy_timeout) for t in flat]
        paths: list[list[Hop]] = []
        pos = 0
        for n in lengths:
            paths.append(hops[pos : pos + n])
            pos += n
        eid = engine().submit(paths)
        self.logger(logging.INFO, "gfal2 job %s: %d transfers queued", eid, len(flat))
        return eid

    def bulk_query(
        self, requests_by_eid: Mapping[str, Mapping[str, Any]], timeout: int | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for eid, requests in requests_by_eid.items():
            finished = engine().status(eid)
            if finished is None:
                out[eid] = None  # unknown to this process: Rucio marks it lost and requeues
                continue
            out[eid] = {
                rid: Gfal2TransferStatusReport(rid, eid, finished[rid], self.external_host)
                for rid in requests
                if rid in finished
            }
        return out

    def cancel(self, transfer_ids: Sequence[str], timeout: int | None = None) -> bool:
        engine().cancel(transfer_ids)
        return True

    def update_priority(self, transfer_id: str, priority: int, timeout: int | None = None) -> bool:
        return True  # pools are FIFO per link; Rucio's priority already orders submission


def register() -> None:
    """Make Rucio's conveyor able to pick ``gfal2``, without touching Rucio's source.

    Two module-level tables are extended in this process only: the transfertool registry, and
    the scheme-compatibility map, so that a POSIX (``file``) RSE and an S3 RSE (``http``, see
    :mod:`rucio_inlet.s3`) can be the two ends of one transfer: gfal2 streams between any
    pair of its plugins, where FTS needs third-party-copy-capable pairs.
    """
    from rucio.common.constants import SCHEME_MAP
    from rucio.core.transfer import TRANSFERTOOL_CLASSES_BY_NAME

    TRANSFERTOOL_CLASSES_BY_NAME[Gfal2Transfertool.external_name] = Gfal2Transfertool
    for a, b in (("file", "http"), ("file", "https"), ("http", "file"), ("https", "file")):
        compatible = SCHEME_MAP.setdefault(a, [])
        if b not in compatible:
            compatible.append(b)
