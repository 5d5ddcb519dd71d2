"""``inlet follow EXPR``: each file of a selection, once, as soon as it is available (inlet.follow)."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from inlet.errors import InletError
from inlet.follow.feed import check_name
from inlet.follow.source import FollowedFile, parse_since

HELP = (
    "Print (or download, or hand to a command) each file of a selection once, as soon as it is available;"
    " then wait for the next. EXPR is `inlet select`'s grammar (`inlet select -h`).\n\n"
    '  inlet follow "raw: stream = \'ksl\'" --rse S3 --name reco-ksl --download /data --exec "reco {path}"\n\n'
    "Without --from-start or --since it starts now. With --name the follower is durable: its position is "
    "stored in the catalogue after each file is finished (printed, downloaded and verified, its --exec "
    "done), so a restart under the same name resumes there, missing nothing and repeating nothing "
    "finished; --from-start/--since only apply to a name's first run. One process per name.\n\n"
    "Files appear when the listener (`inlet listen`) records them on an RSE of its \\[listener] "
    "s3_rses/tape_rses, or when the uploader registers them on the DAQ RSE.\n\n"
    "--exec runs CMD without a shell: it is split like a shell line (shlex), then {path} (--download's "
    "local file), {did}, {scope}, {name} and {rse} are replaced inside each word. A command that fails "
    "stops the follower before that file (exit 1): fix it and run again. Ctrl-C (or SIGTERM) stops "
    "cleanly with the position saved.\n"
)


class ConsumerFailed(InletError):
    """What the follower hands files to failed (exit 1): the file stays unfinished."""

    exit_code = 1


PLACEHOLDERS = ("{path}", "{did}", "{scope}", "{name}", "{rse}")


def exec_argv(template: str, needs_path: bool) -> list[str]:
    """The command's words, checked once up front; placeholders are filled per file."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise InletError(
            f"--exec {template[:80]!r}: {exc}", "quote it as a shell would, e.g. \"reco '{path}'\""
        ) from None
    if not words:
        raise InletError("--exec is empty", "give a command, e.g. --exec 'md5sum {path}'")
    if any("{path}" in w for w in words) and not needs_path:
        raise InletError("--exec uses {path} but there is no local file", "add --download DIR, or use {did}")
    return words


def fill(words: list[str], f: FollowedFile, path: Path | None) -> list[str]:
    values = {"{path}": str(path) if path else "", "{did}": f.did, "{scope}": f.scope, "{name}": f.name, "{rse}": f.rse}
    out = []
    for w in words:
        for key, value in values.items():
            w = w.replace(key, value)
        out.append(w)
    return out


class _Stop:
    """First SIGINT/SIGTERM: stop after the file in hand; a second SIGINT: interrupt at once."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()


def _emit(line: str) -> bool:
    """Print one line now (a pipeline reads it at once); False if the reader went away."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        return False


def follow(
    expr: Annotated[str | None, typer.Argument(help="The selection (see `inlet select -h`).")] = None,
    rse: Annotated[
        str | None, typer.Option("--rse", help="Only files available on this RSE (default: any RSE, once per RSE).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A durable follower: its position survives restarts.")
    ] = None,
    from_start: Annotated[bool, typer.Option("--from-start", help="Begin with every file already available.")] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Begin with files available since T (ISO 8601, or 15m / 2h / 3d ago)."),
    ] = None,
    download: Annotated[
        str | None,
        typer.Option("--download", help="Fetch each file into DIR/<scope>/<name> from its RSE, adler32 verified."),
    ] = None,
    exec_cmd: Annotated[
        str | None, typer.Option("--exec", help="Run CMD for each file (no shell; {path} {did} {scope} {name} {rse}).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line and file.")] = False,
    forget: Annotated[
        bool, typer.Option("--forget", help="Drop the position and broker subscription of --name, then exit.")
    ] = False,
) -> None:
    import datetime as dt

    from inlet.catalog.db import open_catalog
    from inlet.config import load_settings
    from inlet.follow.follower import Follower, Start
    from inlet.select.grammar import parse_selection

    if name is not None:
        check_name(name)
    settings = load_settings()
    if forget:
        if name is None:
            raise InletError("--forget needs --name", "name the follower to forget: --name NAME --forget")
        catalog = open_catalog(settings.catalog_url())
        try:
            Follower(expr or "*:", catalog=catalog, broker=settings.broker, name=name).forget()
        finally:
            catalog.dispose()
        typer.echo(f"follower {name} forgotten", err=True)
        return
    if expr is None:
        raise InletError("no selection given", 'pass one, e.g. inlet follow "raw: run > 5000" (see inlet select -h)')
    # Everything the user typed is checked before the catalogue, the broker or Rucio is touched.
    selection = parse_selection(expr)
    if from_start and since is not None:
        raise InletError("--from-start and --since both given", "keep one: --from-start is the whole history")
    start: Start = "start" if from_start else parse_since(since) if since is not None else "now"
    dest: Path | None = None
    if download is not None:
        from inlet.select.fetch import check_destination

        dest = check_destination(download).resolve()
    words = exec_argv(exec_cmd, dest is not None) if exec_cmd is not None else None
    if isinstance(start, dt.datetime) and start > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        raise InletError(f"--since {since} is in the future", "give a past time, or leave --since out to start now")

    downloader = None
    if dest is not None:
        from inlet.cli.select_cmd import _rucio_env
        from inlet.follow.download import Downloader

        _rucio_env()
        downloader = Downloader(dest)

    fs = settings.follow
    stop = threading.Event()
    handler = _Stop(stop)
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    catalog = open_catalog(settings.catalog_url())
    follower = Follower(
        selection,
        catalog=catalog,
        broker=settings.broker,
        rse=rse,
        name=name,
        start=start,
        batch=fs.batch,
        tick=fs.tick,
        burst=fs.burst,
        burst_every=fs.burst_every,
        gap_timeout=fs.gap_timeout,
        connect_timeout=fs.connect_timeout,
        heartbeat_ms=settings.listener.heartbeat_ms,
        stop=stop,
    )
    follower.text = expr  # the stored selection is the text as typed
    try:
        for f in follower:
            if not _handle(f, downloader, words, as_json, stop):
                break  # not finished: the position stays before it
    finally:
        follower.close()
        catalog.dispose()
        for sig, h in old.items():
            signal.signal(sig, h)
    if stop.is_set() and name is not None:
        cursor = follower.cursor
        typer.echo(f"stopped; follower {name} is at {cursor.token() if cursor else '?'}", err=True)


def _handle(f: FollowedFile, downloader: Any, words: list[str] | None, as_json: bool, stop: threading.Event) -> bool:
    """Do what the options say with one file; True once it is finished."""
    from inlet.follow.download import UnsafeName

    path: Path | None = None
    if downloader is not None:
        try:
            path = downloader.download(f)
        except UnsafeName as exc:
            # Nothing can ever be done with it: say so and go on (the file counts as handled).
            typer.echo(f"inlet: skipped {f.did!r}: {exc.problem}", err=True)
            return True
        if stop.is_set():
            return False
    if words is not None:
        argv = fill(words, f, path)
        try:
            code = subprocess.run(argv, check=False).returncode
        except OSError as exc:
            raise InletError(f"--exec {argv[0]!r} cannot run: {exc.strerror or exc}", "check the command") from None
        if stop.is_set():
            return False
        if code != 0:
            raise ConsumerFailed(
                f"--exec failed for {f.did} (exit {code}); the follower stopped before this file",
                "fix the command or the file, then run again: it resumes with this file",
            )
    line = json.dumps({**f.as_dict(), "path": str(path) if path else None}) if as_json else _plain(f, path)
    if not _emit(line):
        stop.set()
        return False
    return True


def _plain(f: FollowedFile, path: Path | None) -> str:
    at = f.as_dict()["available_at"]
    return f"{f.did}\t{f.rse}\t{f.size}\t{at}" + (f"\t{path}" if path else "")


follow.__doc__ = HELP
