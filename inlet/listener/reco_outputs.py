"""Putting a reconstruction's outputs into Rucio in bulk: one storage session, calls per chunk.

Rucio's ``UploadClient`` makes five to eight server calls per file (scopes, metadata, replica,
state, attach) and opens the storage once per file: a run of 1,800 raw files gave 1,800
outputs registered at about 1.6 a second, longer than the run's own replication. Here the
outputs go to the RSE in one ``rsemanager.upload`` (bulk mode), then into Rucio with one
``add_replicas`` and one ``attach_dids`` per :data:`CHUNK` files.

Safe to repeat (a job retried after a crash): an output that already has an AVAILABLE replica
on the RSE is neither written nor registered again, one whose bytes reached the storage but
were never registered is written again (``delete_existing``: nothing in Rucio points at it),
and only the files not yet in the dataset are attached. A replica and its DID are created in
one ``add_replicas`` transaction, so an output is never registered without an available copy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Files per ``add_replicas`` / ``attach_dids`` call (Rucio's own bulk clients use hundreds).
CHUNK = 500


class OutputsNotStored(Exception):
    """Some outputs could not be written to the RSE; nothing of theirs was registered."""


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def available_on(client: Any, scope: str, names: Sequence[str], rse: str) -> set[str]:
    """The names among ``names`` that already have an AVAILABLE replica on ``rse``."""
    done: set[str] = set()
    for part in _chunks(names):
        dids = [{"scope": scope, "name": n} for n in part]
        for rep in client.list_replicas(dids, rse_expression=rse, all_states=True):
            if str(rep.get("states", {}).get(rse, "")).upper() in ("AVAILABLE", "A"):
                done.add(str(rep["name"]))
    return done


def register_outputs(client: Any, rse: str, scope: str, dataset: str, outputs: Sequence[Path]) -> int:
    """Store ``outputs`` on ``rse`` as ``scope:<file name>`` in ``scope:dataset``; returns how many were new.

    The outputs are one job's output directory: the file name is the DID name, and the RSE
    manager's bulk upload reads every file from one source directory.
    """
    from rucio.common.checksum import adler32, md5
    from rucio.common.exception import DataIdentifierAlreadyExists
    from rucio.rse import rsemanager

    dirs = {p.parent for p in outputs}
    if len(dirs) > 1 or len({p.name for p in outputs}) != len(outputs):
        raise ValueError(f"reco outputs must be distinct files of one directory, got {len(dirs)} directories")
    by_name = {p.name: p for p in outputs}
    done = available_on(client, scope, sorted(by_name), rse)
    todo = [n for n in sorted(by_name) if n not in done]
    if todo:
        files = [
            {
                "scope": scope,
                "name": n,
                "filesize": by_name[n].stat().st_size,
                "adler32": adler32(str(by_name[n])),
                "md5": md5(str(by_name[n])),
            }
            for n in todo
        ]
        info = rsemanager.get_rse_info(rse)
        try:
            result = rsemanager.upload(info, files, source_dir=str(dirs.pop()), delete_existing=True)
        except Exception as exc:  # a single file's failure is raised, not returned
            raise OutputsNotStored(f"{todo[0]} could not be written to {rse}: {exc}") from exc
        # Per file ("scope:name" -> True or the exception) under key 1; key 0 is the overall status.
        per_file = result[1] if isinstance(result[1], dict) else {}
        failed = {f"{scope}:{n}": per_file.get(f"{scope}:{n}", "no result") for n in todo}
        failed = {k: v for k, v in failed.items() if v is not True}
        if failed:
            first = next(iter(failed.items()))
            raise OutputsNotStored(
                f"{len(failed)} of {len(files)} output(s) could not be written to {rse} (first: {first[0]}: {first[1]})"
            )
        for part in _chunks(files):
            replicas = [
                {"scope": scope, "name": f["name"], "bytes": f["filesize"], "adler32": f["adler32"], "md5": f["md5"]}
                for f in part
            ]
            client.add_replicas(rse=rse, files=replicas)
    with contextlib.suppress(DataIdentifierAlreadyExists):
        client.add_dataset(scope=scope, name=dataset)
    attached = {str(f["name"]) for f in client.list_files(scope, dataset)}
    missing = [{"scope": scope, "name": n} for n in sorted(by_name) if n not in attached]
    for part in _chunks(missing):
        client.attach_dids(scope=scope, name=dataset, dids=list(part))
    log.info("reco outputs: %d new on %s, %d attached to %s:%s", len(todo), rse, len(missing), scope, dataset)
    return len(todo)
