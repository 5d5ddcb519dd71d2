"""``inlet daemon``: Rucio daemons run by inlet: the conveyor with the gfal2 transfertool, and the
judge-evaluator and hermes with sub-second sleeps (the two every file waits for)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from inlet.config import load_settings
from inlet.errors import InletError

WakeOpt = Annotated[
    bool,
    typer.Option(
        "--wake/--no-wake",
        help="Run a pass when PostgreSQL notifies that work arrived (triggers the lake installs), "
        "instead of every --sleep seconds.",
    ),
]
IdleOpt = Annotated[
    float, typer.Option(min=0.1, help="With --wake: seconds between passes when nothing wakes the daemon.")
]

app = typer.Typer(
    help="Rucio daemons that need inlet's plugins registered first, or sub-second sleeps.", no_args_is_help=True
)


def _rucio_config() -> None:
    """RUCIO_CONFIG if set; else [rucio] config; else the local lake's rucio.cfg. Exits 2 if missing."""
    if "RUCIO_CONFIG" not in os.environ:
        settings = load_settings()
        if settings.rucio.config is not None:
            os.environ["RUCIO_CONFIG"] = str(settings.rucio.config)
        else:
            from inlet.lake.lake import Lake

            os.environ.update(Lake(settings).rucio_client_env())
    cfg = os.environ["RUCIO_CONFIG"]
    if not os.path.isfile(cfg):
        raise InletError(
            f"the Rucio configuration {cfg} does not exist",
            "set RUCIO_CONFIG to your site's rucio.cfg, or start the local lake with `inlet lake up`",
        )
    import logging
    import sys

    if not sys.stderr.isatty():
        # A log file (the lake's service log): plain, greppable lines rather than Rich's boxes.
        level = logging.getLogger().getEffectiveLevel()
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr, force=True
        )


@app.command()
def conveyor(
    submitter_sleep: Annotated[float, typer.Option(min=0.01, help="Seconds between submitter passes.")] = 1.0,
    poller_sleep: Annotated[float, typer.Option(min=0.01, help="Seconds between poller passes.")] = 1.0,
    finisher_sleep: Annotated[float, typer.Option(min=0.01, help="Seconds between finisher passes.")] = 1.0,
    bulk: Annotated[int, typer.Option(min=1, help="Requests per submitter/finisher pass.")] = 200,
    once: Annotated[bool, typer.Option("--once", help="One pass of each loop, in order, then exit.")] = False,
    wake: WakeOpt = False,
    idle: IdleOpt = 10.0,
) -> None:
    """Run Rucio's submitter, poller and finisher with the gfal2 transfertool (real copies, no FTS).

    Uses RUCIO_CONFIG if set; else [rucio] config; else the local lake's rucio.cfg. The Rucio
    configuration should say `[conveyor] transfertool = gfal2` (the lake's does).
    """
    _rucio_config()
    from inlet.plugins.conveyor import ConveyorConfigError, ConveyorOptions, run

    try:
        run(ConveyorOptions(submitter_sleep, poller_sleep, finisher_sleep, bulk, once=once, wake=wake, idle=idle))
    except ConveyorConfigError as err:
        problem, _, fix = str(err).partition(": ")
        raise InletError(problem, fix) from err


@app.command("judge-evaluator")
def judge_evaluator(
    sleep: Annotated[float, typer.Option(min=0.01, help="Seconds between passes (Rucio: whole s).")] = 1.0,
    max_pause: Annotated[
        float, typer.Option(min=0.1, help="Longest pause of a dataset found locked (Rucio's own: 60-600 s).")
    ] = 2.0,
    did_limit: Annotated[int, typer.Option(min=1, help="DIDs per pass.")] = 100,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    wake: WakeOpt = False,
    idle: IdleOpt = 10.0,
) -> None:
    """Rucio's judge-evaluator (attached files → locks and transfer requests), with short sleeps and pauses."""
    _rucio_config()
    from inlet.plugins.flow_daemons import Pace, run_judge_evaluator

    run_judge_evaluator(Pace(sleep, wake, idle), max_pause, did_limit, once)


@app.command("hermes")
def hermes(
    sleep: Annotated[float, typer.Option(min=0.01, help="Seconds between passes (rucio-hermes: whole s).")] = 1.0,
    bulk: Annotated[int, typer.Option(min=1, help="Messages per pass.")] = 1000,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    wake: WakeOpt = False,
    idle: IdleOpt = 10.0,
) -> None:
    """Rucio's hermes (queued messages → ActiveMQ, as configured in rucio.cfg), with short sleeps."""
    _rucio_config()
    from inlet.plugins.flow_daemons import Pace, run_hermes

    run_hermes(Pace(sleep, wake, idle), bulk, once)
