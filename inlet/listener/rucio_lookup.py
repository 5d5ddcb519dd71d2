"""The Rucio questions the built-in handlers ask, through the Rucio client.

The client is created on first use: Rucio reads ``RUCIO_CONFIG`` when first imported, and a
listener whose routes never need Rucio should start without it.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any


class RucioClientLookup:
    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from rucio.client import Client

                self._client = Client()
            return self._client

    def rule_rses(self, rule_id: str) -> list[str]:
        rule = self.client.get_replication_rule(rule_id)
        return sorted(r["rse"] for r in self.client.list_rses(rule["rse_expression"]))

    def file_rule_states(self, scope: str, name: str) -> dict[str, str]:
        return {
            str(r["id"]): str(r["state"]).split(".")[-1].upper()
            for r in self.client.list_associated_rules_for_file(scope, name)
        }

    def dataset_files(self, scope: str, name: str) -> list[tuple[str, str]]:
        return [(str(f["scope"]), str(f["name"])) for f in self.client.list_files(scope, name)]

    def available_on(self, rse: str, files: list[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for start in range(0, len(files), 500):
            dids = [{"scope": sc, "name": n} for sc, n in files[start : start + 500]]
            for r in self.client.list_replicas(dids, all_states=True, rse_expression=rse):
                if str((r.get("states") or {}).get(rse, "")).split(".")[-1].upper() == "AVAILABLE":
                    found.add((str(r["scope"]), str(r["name"])))
        return found

    def problem_rules(self, not_ok_after: float) -> list[dict[str, str]]:
        # Rucio's rule filter takes the one-letter state codes and RFC 1123 dates.
        found = list(self.client.list_replication_rules({"state": "S"}))
        if not_ok_after > 0:
            before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=not_ok_after)
            stamp = before.strftime("%a, %d %b %Y %H:%M:%S UTC")
            found += list(self.client.list_replication_rules({"state": "R", "created_before": stamp}))
        return [
            {
                "id": str(r["id"]),
                "did": f"{r['scope']}:{r['name']}",
                "rse_expression": str(r["rse_expression"]),
                "state": str(r["state"]).split(".")[-1].upper(),
                "error": str(r.get("error") or ""),
            }
            for r in found
        ]
