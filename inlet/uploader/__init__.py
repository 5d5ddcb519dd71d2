"""inlet's paced uploader: DAQ files to Rucio DIDs, run datasets, rules and a freed DAQ disk.

``celery -A inlet.uploader worker`` runs the workers; ``inlet upload`` / ``inlet watch`` and
:mod:`inlet.uploader.api` feed them. The uploader meets the listener only through the broker
(``file-registered`` out, ``daq-release`` in) and the run catalogue, never through imports.
"""

from inlet.uploader.celery_app import app

__all__ = ["app"]
