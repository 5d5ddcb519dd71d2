"""The synthetic DAQ: 1-second chunks of strain-like data, written and closed the way a DAQ does.

Each chunk is a small text header followed by float64 samples: Gaussian noise at the 1e-21
strain scale plus a 60 Hz mains line and a slow drift, at the configured sample rate, repeated
over as many channels as it takes to reach the chunk size. The content is random enough that
a flipped byte always changes the checksum, and cheap to make (a few ms per chunk).

A chunk is written under a hidden temporary name and renamed, then its sidecar JSON (run and
checksums) is written: the sidecar is the DAQ's "file closed" signal that ``inlet watch``
acts on at once, and its checksums let the uploader verify what it read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: GPS epoch (1980-01-06) in Unix seconds, and the leap seconds since (unchanged since 2017).
GPS_EPOCH = 315_964_800
LEAP_SECONDS = 18


def gps_now() -> int:
    return int(time.time()) - GPS_EPOCH + LEAP_SECONDS


def chunk_name(run: int, stream: str, gps: int) -> str:
    return f"run{run:06d}_{stream}_{gps:010d}.gwf"


@dataclass(frozen=True)
class Chunk:
    index: int
    name: str
    path: Path
    size: int
    adler32: str
    md5: str
    closed_at: float


class StrainSource:
    """Chunks of ``size`` bytes at ``sample_rate`` Hz, deterministic for a given seed."""

    def __init__(self, size: int = 85_000, sample_rate: int = 4096, seed: int | None = None) -> None:
        if size < 256:
            raise ValueError(f"chunk size {size} B is too small: give at least 256 B (EGO's chunks were 85 kB)")
        self.size = size
        self.sample_rate = sample_rate
        self.rng = np.random.default_rng(seed)

    def data(self, gps: int) -> bytes:
        header = f"INLET-STRAIN gps={gps} rate={self.sample_rate} dtype=float64\n".encode()
        n = (self.size - len(header)) // 8
        t = gps + np.arange(n) / self.sample_rate
        h = 1e-21 * (self.rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 60.0 * t) + 0.05 * np.sin(0.01 * t))
        body = h.astype("<f8").tobytes()
        return (header + body).ljust(self.size, b"\0")


def write_chunk(directory: Path, index: int, name: str, data: bytes, run: int, sidecar_suffix: str) -> Chunk:
    """Write, close and announce one chunk; ``closed_at`` is when the DAQ let go of it."""
    final = directory / name
    tmp = directory / f".{name}.part"
    with tmp.open("wb") as f:
        f.write(data)
    os.replace(tmp, final)
    closed_at = time.time()
    adler = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    side = {"run": run, "adler32": adler, "md5": md5, "size": len(data)}
    side_tmp = directory / f".{name}{sidecar_suffix}.part"
    side_tmp.write_text(json.dumps(side))
    os.replace(side_tmp, directory / f"{name}{sidecar_suffix}")
    return Chunk(index, name, final, len(data), adler, md5, closed_at)
