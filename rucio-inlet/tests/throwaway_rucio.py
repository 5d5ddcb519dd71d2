"""A throw-away Rucio configuration for unit tests of code that Rucio loads (policies, plugins).

Rucio reads its configuration once, at first import, so it is only written when no RUCIO_CONFIG
is set: an integration test of the same session that already pointed Rucio at the lake wins.
The database URL names a SQLite file nobody opens: these tests never reach Rucio's catalogue.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def use_throwaway_rucio_config() -> None:
    if "RUCIO_CONFIG" in os.environ:
        return
    cfg_dir = Path(tempfile.mkdtemp(prefix="inlet-unit-rucio-"))
    (cfg_dir / "rucio.cfg").write_text(
        "[common]\nloglevel = WARNING\n"
        f"[database]\ndefault = sqlite:///{cfg_dir / 'unused.db'}\n"
        "[policy]\npermission = generic\nschema = generic\n"
        "[conveyor]\ntransfertool = gfal2\ngfal2_link_concurrency = 2\n"
    )
    os.environ["RUCIO_CONFIG"] = str(cfg_dir / "rucio.cfg")
