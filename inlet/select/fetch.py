"""``inlet fetch``: make selected files available on disk and download them, resumably.

Steps, each safe to repeat (a second run after an interruption redoes only what is missing):

1. Files already in the destination (``DIR/<scope>/<name>``, Rucio's download layout) whose
   adler32 matches the catalogue are skipped.
2. Rucio says where the rest have AVAILABLE replicas. Files with a replica on a non-tape
   RSE are downloaded from there.
3. Files only on TAPE are recalled first: one ``add_replication_rule`` call per run dataset
   (grouping ALL, to one disk RSE of ``--recall-to``, with a lifetime so the cache copy is
   reaped later). Rucio queues the group's transfer requests together, so the conveyor
   submits them to the tape system as one batch: one mount per group, not per file. An
   existing identical rule (from an interrupted fetch) is reused, not duplicated.
4. Downloads run in parallel from disk RSEs only (never straight from tape), through Rucio's
   download client, which verifies checksums; inlet checks adler32 against the catalogue too.

The Rucio client is imported lazily: the process must have RUCIO_CONFIG set first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rucio_inlet.checksums import file_adler32

from inlet.errors import InletError
from inlet.select.resolve import SelectedFile, group_by_dataset

log = logging.getLogger(__name__)


def local_path(dest: Path, f: SelectedFile) -> Path:
    return dest / f.scope / f.name


def verified(path: Path, f: SelectedFile) -> bool:
    if not path.is_file() or path.stat().st_size != f.size:
        return False
    return f.adler32 is None or file_adler32(path) == f.adler32


@dataclass
class FetchReport:
    skipped: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    recall_rules: list[str] = field(default_factory=list)
    recall_groups: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class FetchError(InletError):
    """The fetch cannot go on (exit 1: a problem found on the way, not bad input)."""

    exit_code = 1


def check_destination(text: str) -> Path:
    """The ``--to`` directory, refused up front if files could not land there.

    An empty value would silently mean the current directory, and an existing non-directory
    (``/dev/null``, a file) would fail only after the recalls; both are input errors.
    """
    if not text.strip():
        raise InletError("--to is empty", "name the destination directory, e.g. --to ./data (--to . for here)")
    dest = Path(text)
    if dest.exists() and not dest.is_dir():
        raise InletError(f"--to {text}: exists and is not a directory", "name a directory, or a path to create")
    existing = next((p for p in (dest, *dest.absolute().parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InletError(f"--to {text}: {existing} is not a directory", "name a directory, or a path to create")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InletError(f"--to {text}: {existing} is not writable", "choose a directory you may write to")
    return dest


Progress = Callable[[str, int, int], None]


def _quiet(_stage: str, _done: int, _total: int) -> None:
    pass


class Fetcher:
    def __init__(
        self,
        dest: Path,
        recall_to: str = "rse_type=DISK",
        lifetime: int = 7 * 86400,
        workers: int = 4,
        recall_timeout: float = 3600.0,
        poll: float = 2.0,
    ) -> None:
        from rucio.client import Client

        self.client = Client()
        self.dest = dest
        self.recall_to = recall_to
        self.lifetime = lifetime
        self.workers = workers
        self.recall_timeout = recall_timeout
        self.poll = poll
        self._rse_types: dict[str, str] = {}
        self._local = threading.local()

    def _is_tape(self, rse: str) -> bool:
        if rse not in self._rse_types:
            self._rse_types[rse] = str(self.client.get_rse(rse).get("rse_type", "DISK"))
        return self._rse_types[rse] == "TAPE"

    def disk_replicas(self, files: list[SelectedFile]) -> dict[str, set[str]]:
        """DID → RSEs holding an AVAILABLE replica, split later into disk and tape."""
        where: dict[str, set[str]] = {f.did: set() for f in files}
        for i in range(0, len(files), 500):
            dids = [{"scope": f.scope, "name": f.name} for f in files[i : i + 500]]
            for rep in self.client.list_replicas(dids, all_states=False):
                where[f"{rep['scope']}:{rep['name']}"] = set(rep.get("rses", {}))
        return where

    def run(self, files: list[SelectedFile], progress: Progress = _quiet) -> FetchReport:
        report = FetchReport()
        todo: list[SelectedFile] = []
        for f in files:
            if verified(local_path(self.dest, f), f):
                report.skipped.append(f.did)
            else:
                todo.append(f)
        if not todo:
            return report
        where = self.disk_replicas(todo)
        on_disk = [f for f in todo if any(not self._is_tape(r) for r in where[f.did])]
        on_tape = [f for f in todo if f not in on_disk and where[f.did]]
        for f in todo:
            if not where[f.did]:
                report.failed[f.did] = "no AVAILABLE replica in Rucio (run `inlet reconcile` to compare)"
        if on_tape:
            rules = self.recall(on_tape, report)
            self.wait(rules, progress, report)
            on_disk += [f for f in on_tape if f.did not in report.failed]
        self.download(on_disk, progress, report)
        return report

    def recall(self, files: list[SelectedFile], report: FetchReport) -> list[str]:
        from rucio.common.exception import DuplicateRule

        rule_ids: list[str] = []
        groups = group_by_dataset(files)
        report.recall_groups = len(groups)
        for (scope, dataset), group in groups.items():
            dids = [{"scope": f.scope, "name": f.name} for f in group]
            try:
                ids = self.client.add_replication_rule(
                    dids,
                    copies=1,
                    rse_expression=self.recall_to,
                    grouping="ALL",
                    lifetime=self.lifetime,
                    comment=f"inlet fetch: recall of {scope}:{dataset}",
                )
            except DuplicateRule:
                # Some of these files already have such a rule (an interrupted fetch, an earlier
                # selection): the group call was refused whole, so go file by file, reusing those.
                ids = [self._rule_for(f) for f in group]
            log.info("recall of %s:%s (%d files): rules %s", scope, dataset, len(group), ids)
            rule_ids.extend(ids)
        report.recall_rules = rule_ids
        return rule_ids

    def _rule_for(self, f: SelectedFile) -> str:
        from rucio.common.exception import DuplicateRule

        try:
            return str(
                self.client.add_replication_rule(
                    [{"scope": f.scope, "name": f.name}],
                    copies=1,
                    rse_expression=self.recall_to,
                    grouping="ALL",
                    lifetime=self.lifetime,
                    comment="inlet fetch: recall",
                )[0]
            )
        except DuplicateRule:
            account = self.client.account
            for rule in self.client.list_did_rules(f.scope, f.name):
                if rule["account"] == account and rule["rse_expression"] == self.recall_to:
                    return str(rule["id"])
            raise

    def wait(self, rule_ids: list[str], progress: Progress, report: FetchReport) -> None:
        deadline = time.monotonic() + self.recall_timeout
        pending = set(rule_ids)
        while pending:
            for rid in list(pending):
                if self.client.get_replication_rule(rid)["state"] == "OK":
                    pending.discard(rid)
            progress("recall", len(rule_ids) - len(pending), len(rule_ids))
            if not pending:
                return
            if time.monotonic() > deadline:
                raise FetchError(
                    f"{len(pending)} recall rule(s) not OK after {self.recall_timeout:.0f} s: {sorted(pending)}; "
                    "check the conveyor (`inlet lake status`, `rucio rule info ID`), then run the same "
                    "`inlet fetch` again: it resumes"
                )
            time.sleep(self.poll)

    def _downloader(self) -> Any:
        if not hasattr(self._local, "dl"):
            from rucio.client.downloadclient import DownloadClient

            self._local.dl = DownloadClient(logger=logging.getLogger("rucio.download"))
        return self._local.dl

    def _download_one(self, f: SelectedFile) -> str | None:
        path = local_path(self.dest, f)
        path.unlink(missing_ok=True)  # a partial or corrupt earlier copy
        try:
            self._downloader().download_dids(
                [{"did": f.did, "base_dir": str(self.dest), "rse": "rse_type=DISK"}], num_threads=1
            )
        except Exception as exc:
            return f"download failed: {type(exc).__name__}: {exc}"
        if not verified(path, f):
            path.unlink(missing_ok=True)
            return f"downloaded copy does not match the catalogue (size {f.size}, adler32 {f.adler32})"
        return None

    def download(self, files: list[SelectedFile], progress: Progress, report: FetchReport) -> None:
        self.dest.mkdir(parents=True, exist_ok=True)
        done = 0
        progress("download", 0, len(files))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {pool.submit(self._download_one, f): f for f in files}
            for fut in as_completed(futures):
                f = futures[fut]
                err = fut.result()
                if err:
                    report.failed[f.did] = err
                else:
                    report.downloaded.append(f.did)
                done += 1
                progress("download", done, len(files))
