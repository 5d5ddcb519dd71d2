"""Standard-library logging set-up shared by the CLI and the services.

Every record is masked before any handler sees it: the secrets the settings hold (passwords,
keys, webhook tokens) and any password inside a URL, so that neither a log file nor a terminal
shows them, whichever library wrote the line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from rich.logging import RichHandler

from inlet.config import mask_text


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message (its args merged in) and in its traceback text."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        super().__init__()
        self.known = set(known)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report
            return True
        masked = mask_text(message, self.known)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set: the traceback is masked once, here.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, self.known)
        return True


_installed: SecretFilter | None = None


def install_secret_filter(known: Iterable[str] | None = None) -> SecretFilter:
    """Mask every record of this process, whatever handlers are added later.

    The filter runs in the record factory, not on today's handlers: a later
    ``basicConfig(force=True)`` (``inlet daemon``) or Celery's own handlers would drop a
    handler filter. ``known`` defaults to the secrets of the current settings.
    """
    global _installed
    if known is None:
        known = _settings_secrets()
    if _installed is not None:
        _installed.known = set(known)
        return _installed
    filt = SecretFilter(known)
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        filt.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = filt
    return filt


def _settings_secrets() -> set[str]:
    from inlet.config import load_settings, secret_values

    try:
        return secret_values(load_settings())
    except Exception:  # bad settings are reported by the command; URLs are still masked
        return set()


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(name)s: %(message)s", handlers=[RichHandler(show_path=False)], force=True
    )
    install_secret_filter()
