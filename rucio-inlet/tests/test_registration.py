"""Registration is explicit: importing the plugins changes nothing for a site that keeps FTS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
#: As conftest.py does: the real binding where it exists (3.11), the file-only stub elsewhere (3.9).
STUB_WHERE_NO_GFAL2 = (
    "import sys\ntry:\n    import gfal2\nexcept ImportError:\n"
    "    import gfal2_stub\n    sys.modules['gfal2'] = gfal2_stub\n"
)


def test_importing_the_transfertool_leaves_rucios_registry_and_scheme_map_alone() -> None:
    code = (
        STUB_WHERE_NO_GFAL2 + "import copy, rucio.common.constants as c, rucio.core.transfer as t\n"
        "before = (set(t.TRANSFERTOOL_CLASSES_BY_NAME), copy.deepcopy(c.SCHEME_MAP))\n"
        "import rucio_inlet.transfertool, rucio_inlet.s3\n"
        "assert before == (set(t.TRANSFERTOOL_CLASSES_BY_NAME), c.SCHEME_MAP), 'import changed Rucio'\n"
        "rucio_inlet.transfertool.register()\n"
        "assert 'gfal2' in t.TRANSFERTOOL_CLASSES_BY_NAME\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
