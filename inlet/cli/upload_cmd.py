"""``inlet upload`` (files of a run to the workers, with a progress bar) and ``inlet uploader`` (status, release)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from inlet.cli.output import JsonAlways
from inlet.errors import InletError

console = Console(stderr=True, soft_wrap=True)
app = typer.Typer(help="The paced uploader's operator view: status of the queue, DAQ-disk release.")


def require_redis(url: str) -> None:
    """Say at once when Redis (Celery's broker) does not answer.

    Without this, Celery logs twenty reconnection attempts over 20 s and then dies with a
    RuntimeError that does not name Redis.
    """
    import redis

    from inlet.cli.failures import LAKE_FIX, mask

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as err:
        raise InletError(
            f"Redis, the uploader's queue, does not answer at {mask(url)}: {type(err).__name__}: {err}",
            f"check [redis] url / INLET_REDIS__URL (a password goes in redis://:PASSWORD@HOST:PORT/DB); {LAKE_FIX}",
        ) from err


def await_worker(queue: str, no_wait: bool, timeout: float | None) -> None:
    """Say at once when no worker consumes ``queue``, naming the command that starts one; then
    wait for one, visibly (with --no-wait: queue anyway, for a worker started later).

    Without this, an upload with no worker printed nothing and waited until it was killed.
    """
    import time

    from inlet.uploader import api

    if api.workers_on(queue):
        return
    console.print(
        f"[yellow]no uploader worker consumes the queue {escape(queue)}[/]: start one with "
        f"`{escape(api.worker_command(queue))}`"
    )
    if no_wait:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    with console.status(f"waiting for a worker on {escape(queue)}"):
        while not api.workers_on(queue, timeout=2.0):
            if deadline is not None and time.monotonic() > deadline:
                raise InletError(
                    f"no uploader worker took the queue {queue} within --timeout {timeout:g} s; nothing was queued",
                    f"start one with `{api.worker_command(queue)}`, then upload again",
                )
    console.print("a worker is up")


def upload(
    files: Annotated[list[Path], typer.Argument(help="DAQ files of one run.")],
    run: Annotated[int, typer.Option("--run", help="Run number (must agree with the file names).")],
    stream: Annotated[str, typer.Option("--stream", help="Stream policy from \\[uploader.streams].")] = "raw",
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="Experiment (default: \\[naming] experiment).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Files per task (default: \\[uploader] batch_size).")
    ] = None,
    every: Annotated[
        float | None,
        typer.Option("--every", min=0.001, help="Profile playback: submit one batch every this many seconds."),
    ] = None,
    end_run: Annotated[
        bool, typer.Option("--end-run", help="These are all the run's files: close the run dataset afterwards.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Queue and return without waiting (for the files, or for a worker).")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Give up waiting (for a worker, then for the files) after this many s."),
    ] = None,
) -> None:
    """Upload FILES of run --run as stream --stream: DIDs, run dataset, rules, catalogue, events.

    Celery workers (`celery -A inlet.uploader worker`) do the work; this command checks
    every name first (nothing is queued if one is refused), says at once when no worker runs
    (and waits for one, up to --timeout), then follows the batches.
    """
    from inlet.uploader import api, app_runtime

    items = api.check_files(files, run, stream, experiment)  # BadInput: the CLI's one handler, exit 2
    settings = app_runtime.settings()
    require_redis(settings.redis.url)
    await_worker(settings.uploader.queue, no_wait, timeout)
    results, end = api.submit(items, run, stream, experiment, batch_size=batch_size, every=every, end_run=end_run)
    if no_wait:
        console.print(f"queued {len(items)} files in {len(results)} batches")
        return
    with Progress(
        TextColumn("[bold]run {task.fields[run]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("upload", total=len(items), run=run)

        def advance(res: dict[str, Any]) -> None:
            done = sum(len(res[k]) for k in ("registered", "skipped", "failed", "quarantined"))
            bar.advance(task, done)

        outcome = api.wait(results, end, timeout=timeout, progress=advance)
    for path, why in {**outcome.failed, **outcome.quarantined}.items():
        console.print(f"[bold red]refused:[/] {escape(path)}: {escape(why)}")
    summary = {
        "registered": len(outcome.registered),
        "skipped": len(outcome.skipped),
        "failed": len(outcome.failed),
        "quarantined": len(outcome.quarantined),
        "run_state": outcome.run_state,
    }
    typer.echo(json.dumps(summary))
    if not outcome.ok:
        raise typer.Exit(code=1)


@app.command("status")
def status(
    as_json: JsonAlways = True,
) -> None:
    """Queue depth, batches waiting for pacing tokens, files registered, errors, recent grant rate (JSON)."""
    import redis

    from inlet.lake.services.redis import masked_url
    from inlet.uploader import app_runtime
    from inlet.uploader.status import uploader_status

    settings = app_runtime.settings()
    require_redis(settings.redis.url)
    r = app_runtime.redis_client(settings.redis.url)
    try:
        out = uploader_status(settings, r)
    except redis.AuthenticationError:
        console.print(
            f"[bold red]error:[/] Redis at {escape(masked_url(settings.redis.url))} refused the password; "
            "fix: put Redis's password in \\[redis] url (INLET_REDIS__URL=redis://:PASSWORD@host:port/db)"
        )
        raise typer.Exit(code=2) from None
    except redis.RedisError as err:
        console.print(
            f"[bold red]error:[/] cannot reach Redis at {escape(masked_url(settings.redis.url))} ({escape(str(err))}); "
            "fix: start it (`inlet lake up`) or point \\[redis] url at it"
        )
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(out, indent=2))


@app.command("release")
def release(
    once: Annotated[bool, typer.Option("--once", help="One poll of every waiting file, then exit.")] = False,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between polls (default \\[uploader] release_poll).")
    ] = None,
) -> None:
    """Free DAQ copies whose rules are all OK: on the listener's daq-release events, and by polling Rucio."""
    from inlet.uploader import app_runtime
    from inlet.uploader.daq_release import PendingStore, Releaser
    from inlet.uploader.events import Subscription
    from inlet.uploader.pipeline import state_path

    settings = app_runtime.settings()
    uploader_settings = settings.uploader
    store = PendingStore(state_path(settings, uploader_settings.state_dir) / "pending")
    releaser = Releaser(store, state_path(settings, uploader_settings.done_dir) if uploader_settings.done_dir else None)
    if once:
        typer.echo(json.dumps({"released": releaser.poll_once()}))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sub = Subscription(settings.broker, releaser.on_event)

    def subscribe() -> None:
        if not sub.alive:
            sub.open()

    try:
        releaser.run(interval or uploader_settings.release_poll, stop.is_set, subscribe)
    finally:
        sub.close()
