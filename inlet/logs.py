"""Standard-library logging set-up shared by the CLI and the services."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(name)s: %(message)s", handlers=[RichHandler(show_path=False)], force=True
    )
