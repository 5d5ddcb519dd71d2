"""Rucio reads its configuration at import: give the plugin modules a throw-away one, no services.

The database URL names a SQLite file nobody opens: these tests never reach Rucio's catalogue.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_CFG_DIR = Path(tempfile.mkdtemp(prefix="inlet-unit-rucio-"))
(_CFG_DIR / "rucio.cfg").write_text(
    "[common]\nloglevel = WARNING\n"
    f"[database]\ndefault = sqlite:///{_CFG_DIR / 'unused.db'}\n"
    "[policy]\npermission = generic\nschema = generic\n"
    "[conveyor]\ntransfertool = gfal2\ngfal2_link_concurrency = 2\n"
)
os.environ["RUCIO_CONFIG"] = str(_CFG_DIR / "rucio.cfg")
