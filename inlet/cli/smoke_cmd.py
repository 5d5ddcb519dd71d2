"""``inlet smoke``: the main job until the dress rehearsal lands: lake up, then a timed
upload/download round trip through the standard `rucio` CLI."""

from __future__ import annotations

import time

import typer

from inlet.config import load_settings
from inlet.lake.lake import Lake
from inlet.lake.smoke import run_smoke


def smoke(
    size_kb: int = typer.Option(85, help="Size of the test file in kB (85 kB = one EGO 1-s chunk)."),
) -> None:
    """Start the local lake if needed, then upload a file to SITE_A_DISK and download it back
    with the `rucio` CLI, verifying adler32, and print the timings."""
    lake = Lake(load_settings())
    t0 = time.monotonic()
    rows = lake.up(lambda n, m: typer.echo(f"  {n}: {m}", err=True))  # a LakeError: the CLI's one handler
    t_up = time.monotonic() - t0
    if not all(r.ok for r in rows):
        typer.echo("the lake is not healthy: see `inlet lake status`", err=True)
        raise typer.Exit(1)
    result = run_smoke(lake, size_kb * 1000)
    typer.echo(f"lake up        {t_up:6.2f} s")
    for step, seconds in result.timings.items():
        typer.echo(f"{step:<14} {seconds:6.2f} s")
    typer.echo(f"adler32 {result.adler32} {'OK' if result.ok else 'MISMATCH'}  DID {result.did}")
    if not result.ok:
        raise typer.Exit(1)
