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
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr


def _daemon_imports(tmp_path: Path, transfertool: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that imports Rucio's conveyor daemons as their CLI scripts do."""
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text(
        f"[common]\nloglevel = WARNING\n[database]\ndefault = sqlite:///{tmp_path / 'unused.db'}\n"
        f"[policy]\npackage = rucio_inlet\n[conveyor]\ntransfertool = {transfertool}\n"
    )
    code = STUB_WHERE_NO_GFAL2 + (
        "from rucio.daemons.conveyor import finisher, poller, submitter\n"
        "from rucio.core.transfer import TRANSFERTOOL_CLASSES_BY_NAME as tools\n"
        "print(sorted(tools))\n"
    )
    env = {
        **os.environ,
        "RUCIO_CONFIG": str(cfg),
        "PYTHONPATH": os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_rucios_own_conveyor_daemons_get_gfal2_through_the_policy_package(tmp_path: Path) -> None:
    # Nothing of inlet runs: Rucio's own imports load the policy package (fts3_plugins at import
    # of rucio.core.transfer), whose get_algorithms() registers the transfertool.
    res = _daemon_imports(tmp_path, "gfal2")
    assert res.returncode == 0, res.stderr
    assert "'gfal2'" in res.stdout


def test_a_site_that_keeps_fts_gets_no_gfal2(tmp_path: Path) -> None:
    res = _daemon_imports(tmp_path, "fts3")
    assert res.returncode == 0, res.stderr
    assert "'gfal2'" not in res.stdout and "'fts3'" in res.stdout
