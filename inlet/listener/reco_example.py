"""A small real reconstruction: per-chunk statistics of each raw file, into one derived JSON file.

It stands in for an experiment's reconstruction so that the chain (trigger → fetch → run →
register the output in Rucio) runs end to end on any data: for every 64 KiB chunk of a raw
file it records the byte mean, standard deviation, minimum and maximum.

    python -m inlet.listener.reco_example OUTPUT_DIR RAW_FILE...
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

CHUNK = 65536


def chunk_stats(data: bytes) -> dict[str, float]:
    n = len(data)
    mean = sum(data) / n
    var = sum((b - mean) ** 2 for b in data) / n
    return {"bytes": n, "mean": round(mean, 4), "std": round(math.sqrt(var), 4), "min": min(data), "max": max(data)}


def reconstruct(raw: Path) -> dict[str, Any]:
    chunks = []
    with raw.open("rb") as fh:
        while block := fh.read(CHUNK):
            chunks.append(chunk_stats(block))
    return {"input": raw.name, "chunks": chunks}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m inlet.listener.reco_example OUTPUT_DIR RAW_FILE...", file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        raw = Path(name)
        if not raw.is_file():
            print(f"reco_example: input {raw} does not exist", file=sys.stderr)
            return 1
        (out_dir / f"{raw.name}.stats.json").write_text(json.dumps(reconstruct(raw), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
