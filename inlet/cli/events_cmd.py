"""``inlet events``: publish inlet events, and inspect / replay the listener's dead-letter queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inlet.cli.output import JsonFlag, echo_json
from inlet.config import load_settings
from inlet.errors import InletError

app = typer.Typer(help="inlet's events: publish one, or work the listener's dead-letter queue.", no_args_is_help=True)
dlq_app = typer.Typer(help="The listener's dead-letter queue (\\[listener] dlq).", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


def _fail(problem: str, fix: str = "") -> InletError:
    """The error to raise; the CLI's one handler prints it as one line and exits 2."""
    return InletError(problem, fix)


@app.command("publish")
def publish(
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. run-closed.")],
    payload: Annotated[str, typer.Option("--payload", help="Payload as a JSON object.")] = "{}",
    event_id: Annotated[str | None, typer.Option("--id", help="Event id (default: a new UUID).")] = None,
) -> None:
    """Publish an inlet event on \\[broker] inlet_topic (persistent; the listener's queue keeps it)."""
    from inlet.event_contract import envelope as make_event
    from inlet.event_contract import publish_headers
    from inlet.messaging import Connection

    try:
        body = json.loads(payload)
    except json.JSONDecodeError as err:
        raise _fail(f"--payload is not JSON ({err})", 'pass an object, e.g. --payload \'{"scope": "x"}\'') from err
    if not isinstance(body, dict):
        raise _fail("--payload must be a JSON object", 'pass an object, e.g. --payload \'{"scope": "cygno"}\'')
    settings = load_settings()
    envelope = make_event(event_type, body, event_id)
    # A BrokerUnavailable says which of refused / unreachable: the CLI's one handler prints it.
    with Connection(settings.broker) as conn:
        conn.send(settings.broker.inlet_topic, json.dumps(envelope), publish_headers(envelope))
    typer.echo(envelope["id"])


@dlq_app.command("list")
def dlq_list(as_json: JsonFlag = False) -> None:
    """List dead-lettered messages: id, time, event type, handler and reason."""
    from inlet.listener.broker import header_safe
    from inlet.listener.dlq import DeadLetterQueue

    settings = load_settings()
    letters = DeadLetterQueue(settings.broker, settings.listener).letters()  # a DLQError: the CLI's one handler
    if as_json:
        # JSON escapes control characters itself: nothing reaches a terminal raw.
        echo_json([{k: v for k, v in vars(letter).items() if k not in ("body", "headers")} for letter in letters])
        return
    # One line per message, tab-separated: readable, and greppable by scripts.
    for letter in letters:
        fields = (letter.dlq_id, letter.at, letter.event_type or "-", letter.handler or "-", letter.reason)
        # Anyone who can publish wrote parts of these: no control character reaches the terminal.
        typer.echo("\t".join(header_safe(f, 2000) for f in fields))
    typer.echo(f"{len(letters)} message(s) in {settings.listener.dlq}")


@dlq_app.command("show")
def dlq_show(
    dlq_id: Annotated[str, typer.Argument(help="Id from `inlet events dlq list` (a unique prefix works).")],
    as_json: JsonFlag = False,
) -> None:
    """Print one dead-lettered message: its headers, then its body as received."""
    from inlet.listener.broker import header_safe
    from inlet.listener.dlq import DeadLetterQueue

    settings = load_settings()
    letter = DeadLetterQueue(settings.broker, settings.listener).show(dlq_id)
    if as_json:
        echo_json({"headers": letter.headers, "body": letter.body.decode("utf-8", errors="replace")})
        return
    for key in sorted(letter.headers):
        typer.echo(header_safe(f"{key}: {letter.headers[key]}", 2000))
    typer.echo("")
    # The body as received, but with control characters (terminal escapes) shown as \xNN.
    text = letter.body.decode("utf-8", errors="replace")
    typer.echo("".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text))


@dlq_app.command("replay")
def dlq_replay(
    dlq_ids: Annotated[list[str] | None, typer.Argument(help="Ids to replay.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every message in the DLQ.")] = False,
    body: Annotated[
        Path | None,
        typer.Option("--body", help="Replay ONE message with this file's content as its fixed body.", exists=True),
    ] = None,
) -> None:
    """Send messages back to the queue they came from, for the listener to handle again."""
    from inlet.listener.dlq import DeadLetterQueue, DLQError

    settings = load_settings()
    if not all_ and not dlq_ids:
        raise DLQError("nothing to replay", "name ids from `inlet events dlq list`, or --all")
    dlq = DeadLetterQueue(settings.broker, settings.listener)
    ids = [letter.dlq_id for letter in dlq.letters()] if all_ else list(dlq_ids or [])
    done = dlq.replay(ids, body.read_bytes() if body else None)
    for i in done:
        typer.echo(f"replayed {i}")
