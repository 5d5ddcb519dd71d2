"""`inlet embargo release` against the real lake: a DID whose embargo passed gets its public rule,
one whose embargo is in the future (or unreadable) does not, and a second run adds nothing.

The DIDs live in a scope of their own per run, so that the release only meets this run's DIDs
however often the tests ran on the same lake."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from inlet.lake.lake import Lake
from inlet.lake.services.base import venv_bin
from tests.integration.actors import Actor, expect_ok
from tests.integration.actors import fake_file as _file
from tests.integration.actors import posix_protocol as _posix_protocol


@pytest.fixture(scope="module")
def root(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Actor]:
    r = lake.settings.rucio
    actor = Actor("root", lake, tmp_path_factory.mktemp("embargo"), r.username, r.password)
    yield actor
    actor.close()


def _release(lake: Lake, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **lake.exports(), "COLUMNS": "250"}
    return subprocess.run(
        [venv_bin("inlet"), "embargo", "release", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_release_past_not_future(lake: Lake, root: Actor, tmp_path: Path) -> None:
    sfx = uuid.uuid4().hex[:6].upper()
    public = f"POLREL-{sfx}"
    scope = f"embargo-{sfx.lower()}"
    run = random.randint(100000, 899000)  # unique names per test run
    past, future, typo = (f"run{run + i:06d}.raw" for i in range(3))
    calls: list[tuple[str, list[object], dict[str, object]]] = [
        ("add_rse", [public], {}),
        ("add_protocol", [public, _posix_protocol(lake.paths.data / "rses" / public)], {}),
        ("add_rse_attribute", [public, "public", True], {}),
        ("add_distance", ["SITE_A_DISK", public, {"distance": 1}], {}),
        ("set_local_account_limit", ["root", public, 10**12], {}),
        ("add_scope", ["root", scope], {}),
    ]
    for i, (ds, until) in enumerate(((past, "2021-03-04T05:06:07Z"), (future, "2099-12-31"), (typo, "next year"))):
        f = f"run{run + i:06d}.mid.gz"
        calls += [
            ("add_replicas", ["SITE_A_DISK", [_file(scope, f)]], {}),
            ("add_dataset", [scope, ds], {}),
            ("attach_dids", [scope, ds, [{"scope": scope, "name": f}]], {}),
            ("set_metadata", [scope, ds, "embargo_until", until], {}),
        ]
    expect_ok(root.run(*calls))
    args = ("--scope", scope, "--rse-expression", public)

    dry = _release(lake, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = {ln.split("│")[1].strip(): ln for ln in dry.stdout.splitlines() if f"{scope}:run" in ln}
    assert "due" in lines[f"{scope}:{past}"]
    assert f"{scope}:{future}" not in lines and f"{scope}:{typo}" not in lines

    def rules() -> dict[str, list[dict[str, object]]]:
        out = expect_ok(root.run(*(("list_did_rules", [scope, ds], {}) for ds in (past, future, typo))))
        return {
            ds: [r for r in o.result if r["rse_expression"] == public]
            for ds, o in zip((past, future, typo), out, strict=True)
        }

    assert rules() == {past: [], future: [], typo: []}  # a dry run adds nothing

    first = _release(lake, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    line = next(ln for ln in first.stdout.splitlines() if f"{scope}:{past}" in ln)
    assert "2021-03-04T05:06:07Z" in line and "added" in line
    after = rules()
    assert len(after[past]) == 1 and after[future] == [] and after[typo] == []
    assert after[past][0]["id"] in line

    second = _release(lake, *args)
    assert second.returncode == 0, second.stderr
    line = next(ln for ln in second.stdout.splitlines() if f"{scope}:{past}" in ln)
    assert "already public" in line and after[past][0]["id"] in line
    assert len(rules()[past]) == 1
