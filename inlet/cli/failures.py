"""The one place where the CLI turns a failure into one line: what is wrong, and the fix.

Every command runs inside :class:`InletGroup`, the root command's class, so whatever a command
raises ends here: an :class:`~inlet.errors.InletError` (inlet's own errors), a usage error of
the parser, or an error from the outside world (a configuration that does not validate, a file
that is missing, Redis, the broker, the catalogue database or Rucio not answering). Each is
printed as ``inlet: error: <problem> (fix: <fix>)`` on stderr, and the command exits 2 (bad
input or an unmet precondition). Anything else is a bug in inlet: one line naming the file
that holds its traceback, exit 1; ``--debug`` or ``INLET_DEBUG=1`` lets the traceback through.

Library exception types are looked up in ``sys.modules`` rather than imported: an exception
of a library that was never imported cannot have been raised, and the CLI stays quick to start.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import tempfile
import tomllib
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from inlet.errors import InletError

log = logging.getLogger("inlet.cli")

#: Bad input or an unmet precondition (README, "Exit codes").
BAD_INPUT = 2
#: An unexpected failure (a bug): the traceback went to a file.
UNEXPECTED = 1
#: Longest problem text printed; a selection of 3,000 terms must not fill the screen.
MAX_PROBLEM = 500

LAKE_FIX = "is it running? `inlet lake status` shows the local lake's services, `inlet lake up` starts them"
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):[^@\s/]+@")


def mask(text: str) -> str:
    """Hide the password of any URL (``redis://:pw@host``, ``mysql+pymysql://u:pw@host/db``)."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def one_line(text: str) -> str:
    """Fold a multi-line message into one line: lines joined by '; ' (by ' ' after ':' or '.')."""
    out = ""
    for line in (part.strip() for part in text.splitlines()):
        if not line:
            continue
        out = line if not out else f"{out}{' ' if out.endswith((':', '.')) else '; '}{line}"
    return out


def render(problem: str, fix: str) -> str:
    """The error line. Only the problem is masked: it quotes libraries and settings, while a fix
    is inlet's own text (which masks what it quotes, and may show a URL template)."""
    problem = one_line(mask(problem)).removesuffix(".") or "failed"
    if len(problem) > MAX_PROBLEM:
        problem = problem[: MAX_PROBLEM - 3] + "..."
    fix = one_line(fix)
    return f"inlet: error: {problem} (fix: {fix})" if fix else f"inlet: error: {problem}"


def _loaded(module: str, name: str) -> type[BaseException] | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _is(exc: BaseException, module: str, name: str) -> bool:
    kind = _loaded(module, name)
    return kind is not None and isinstance(exc, kind)


def _config_file() -> str | None:
    explicit = os.environ.get("INLET_CONFIG")
    if explicit:
        return explicit
    return "inlet.toml" if Path("inlet.toml").is_file() else None


def _setting_source(loc: tuple[Any, ...]) -> str:
    env = "INLET_" + "__".join(str(part).upper() for part in loc)
    if env in os.environ:
        return f" (from the environment variable {env})"
    file = _config_file()
    return f" (in {file})" if file else ""


def _validation(exc: Any) -> tuple[str, str]:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(exc), "type": ""}
    loc = tuple(first.get("loc", ()))
    key = ".".join(str(part) for part in loc) or "(top level)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if getattr(exc, "title", "") != "Settings":
        return f"invalid {exc.title}: {key}: {first['msg']}{more}", "correct the input as the message says"
    if first.get("type") == "extra_forbidden":
        return (
            f"unknown configuration key {key}{_setting_source(loc)}{more}",
            "remove or correct it; `inlet config doc` lists every key",
        )
    shown = ""
    if "input" in first and not re.search(r"password|secret|token|webhook", key):
        shown = f" (got {mask(repr(first['input']))[:60]})"
    return (
        f"configuration key {key}{_setting_source(loc)}: {first['msg']}{shown}{more}",
        f"correct it; `inlet config doc` says what {key} takes",
    )


def _is_json(text: str) -> bool:
    """Whether a value that looks like JSON (a list or a table) parses; plain values count as fine."""
    if text.lstrip()[:1] not in ("[", "{"):
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _settings_source(exc: BaseException) -> tuple[str, str]:
    """pydantic-settings could not even parse a value (a list or table given as bad JSON)."""
    field_name = re.search(r'field "([^"]+)"', str(exc))
    prefix = f"INLET_{field_name.group(1).upper()}" if field_name else "INLET_"
    candidates = sorted(k for k in os.environ if k == prefix or k.startswith(prefix + "__"))
    suspects = [k for k in candidates if not _is_json(os.environ[k])] or candidates
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    where = f" (set by {', '.join(suspects)})" if suspects else ""
    return (
        f"configuration: {exc}{cause}{where}",
        'lists and tables in environment variables are JSON, e.g. INLET_LAKE__MANAGE=\'["postgres", "rucio"]\'',
    )


def _sqlalchemy(exc: BaseException) -> tuple[str, str]:
    orig = getattr(exc, "orig", None)
    detail = str(orig) if orig is not None else str(exc).split("\n[SQL:")[0]
    fix = "check [catalog] url / INLET_CATALOG__URL, and that the database server answers"
    if _is(exc, "sqlalchemy.exc", "ArgumentError"):
        return (
            f"bad catalogue URL: {detail}",
            "set [catalog] url / INLET_CATALOG__URL to sqlite:///PATH or mysql+pymysql://USER:PW@HOST/DB",
        )
    return f"the run catalogue's database failed: {type(exc).__name__}: {detail}", fix


def _oserror(exc: OSError) -> tuple[str, str]:
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"cannot connect: {what}{where}", LAKE_FIX
    if isinstance(exc, FileNotFoundError):
        return f"{what}{where}", "check the path (and [lake] state_dir / INLET_LAKE__STATE_DIR for lake files)"
    if isinstance(exc, PermissionError):
        return f"{what}{where}", "run as a user who may access it, or change its permissions"
    return f"{what}{where}", "check the path, its permissions and the free space"


def _redis_auth(exc: Any) -> tuple[str, str]:
    return (
        f"Redis refused the credentials: {exc}",
        "put the password in [redis] url / INLET_REDIS__URL (redis://:PASSWORD@HOST:PORT/DB)",
    )


def _redis(exc: Any) -> tuple[str, str]:
    return f"cannot reach Redis: {exc}", f"check [redis] url / INLET_REDIS__URL; {LAKE_FIX}"


def _kombu(exc: Any) -> tuple[str, str]:
    return f"cannot reach the Celery broker (Redis): {exc}", f"check [redis] url / INLET_REDIS__URL; {LAKE_FIX}"


def _stomp(exc: Any) -> tuple[str, str]:
    return (
        f"the message broker failed: {type(exc).__name__}: {exc or 'no detail'}",
        f"check [broker] host, stomp_port, username and password; {LAKE_FIX}",
    )


def _rucio(exc: Any) -> tuple[str, str]:
    kind = type(exc).__name__
    if kind in ("CannotAuthenticate", "AccessDenied"):
        return (
            f"Rucio refused: {kind}: {exc}",
            "check that [rucio] host is the Rucio server, and the identity inlet uses: [rucio] username / "
            "password / account for the lake's rucio.cfg, or the [client] section of [rucio] config / RUCIO_CONFIG",
        )
    if kind in ("ServerConnectionException", "ConfigNotFound", "ConfigLoadingError"):
        return f"Rucio: {kind}: {exc}", f"check [rucio] host (or RUCIO_CONFIG's [client] rucio_host); {LAKE_FIX}"
    return f"Rucio: {kind}: {exc}", "check the names and values given (`rucio scope list`, `rucio rse list`)"


def _http(exc: Any) -> tuple[str, str]:
    return f"an HTTP request failed: {type(exc).__name__}: {exc}", f"check the service's URL; {LAKE_FIX}"


def _s3(exc: Any) -> tuple[str, str]:
    return f"S3: {type(exc).__name__}: {exc}", f"check [s3] endpoint, bucket and keys; {LAKE_FIX}"


#: (module, exception class, explainer): errors of the outside world; the first match wins.
_EXPLAINERS: list[tuple[str, str, Callable[[Any], tuple[str, str]]]] = [
    ("pydantic_core", "ValidationError", _validation),
    ("pydantic_settings", "SettingsError", _settings_source),
    ("pydantic_settings.exceptions", "SettingsError", _settings_source),
    ("redis.exceptions", "AuthenticationError", _redis_auth),
    ("redis.exceptions", "RedisError", _redis),
    ("kombu.exceptions", "OperationalError", _kombu),
    ("stomp.exception", "StompException", _stomp),
    ("sqlalchemy.exc", "SQLAlchemyError", _sqlalchemy),
    ("rucio.common.exception", "RucioException", _rucio),
    ("requests.exceptions", "RequestException", _http),
    ("botocore.exceptions", "BotoCoreError", _s3),
    ("botocore.exceptions", "ClientError", _s3),
]


def explain(exc: BaseException) -> tuple[str, str, int] | None:
    """(problem, fix, exit code) of an error a user can cure; None for a bug."""
    if isinstance(exc, InletError):
        return exc.problem, exc.fix, exc.exit_code
    for module, name, explainer in _EXPLAINERS:
        if _is(exc, module, name):
            problem, fix = explainer(exc)
            return problem, fix, BAD_INPUT
    if isinstance(exc, tomllib.TOMLDecodeError):
        file = _config_file() or "the configuration file"
        return (
            f"{file} is not valid TOML: {exc}",
            "correct that line (`key = value` under `[section]` headers, text in quotes)",
            BAD_INPUT,
        )
    if isinstance(exc, OSError):
        problem, fix = _oserror(exc)
        return problem, fix, BAD_INPUT
    return None


def _save_traceback(exc: BaseException) -> Path | None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        fd, name = tempfile.mkstemp(prefix=f"inlet-error-{stamp}-", suffix=".log")
        with os.fdopen(fd, "w") as out:
            out.write(f"inlet {' '.join(sys.argv[1:])}\n")
            traceback.print_exception(exc, file=out)
    except OSError:
        return None
    return Path(name)


#: Client libraries whose own log lines only repeat, at length, what the error line says:
#: stomp.py warns about every failed connection attempt, Rucio's client logs every failed
#: request with its own handler and colours. At the default verbosity they are off; `-v`
#: shows them (the services run with -v).
QUIET_LIBRARIES = ("stomp.py", "baseclient")


def quiet_libraries(verbosity: int) -> None:
    # `disabled` rather than a level: Rucio sets its loggers' level when it is imported, later.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).disabled = verbosity <= 0


def debug_requested() -> bool:
    return os.environ.get("INLET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def one_line_errors(debug: bool = False) -> Iterator[None]:
    """Print whatever escapes as one line and exit with its code (2, or 1 for a bug)."""
    try:
        yield
    except (typer.Exit, typer.Abort, NoArgsIsHelpError):
        raise  # click's own ways out: an exit code, Ctrl-C, a group's help
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else "inlet"
        typer.echo(render(exc.format_message(), f"see `{path} -h`"), err=True)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if debug or debug_requested():
            raise
        explained = explain(exc)
        if explained is not None:
            problem, fix, code = explained
            log.debug("%s", problem, exc_info=exc)
        else:
            saved = _save_traceback(exc)
            problem = f"unexpected {type(exc).__name__}: {exc}"
            fix = (
                f"this is a bug in inlet; the traceback is in {saved}" if saved else "this is a bug in inlet"
            ) + "; run again with --debug (or INLET_DEBUG=1) to see it here"
            code = UNEXPECTED
        typer.echo(render(problem, fix), err=True)
        raise typer.Exit(code) from None


class InletGroup(TyperGroup):
    """The root command: every failure, from parsing to the last line of a command, is one line."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with one_line_errors(debug="--debug" in args):
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with one_line_errors(debug=bool(ctx.params.get("debug"))):
            return super().invoke(ctx)
