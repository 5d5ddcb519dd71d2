"""inlet's paced uploader: DAQ files to Rucio DIDs, run datasets, rules and a freed DAQ disk.

``celery -A inlet.uploader worker`` runs the workers; ``inlet upload`` / ``inlet watch`` and
:mod:`inlet.uploader.api` feed them. The uploader meets the listener only through the broker
(``file-registered`` out, ``daq-release`` in) and the run catalogue, never through imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a helper (pacing, plan, checksum) does not build the Celery app
    # and read the configuration; `celery -A inlet.uploader` asks for `app` and gets it here.
    if name in ("app", "celery"):
        from inlet.uploader.celery_app import app

        return app
    raise AttributeError(f"module 'inlet.uploader' has no attribute {name!r}")
