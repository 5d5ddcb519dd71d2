"""Run-partitioned paths: a pinned table (paths must never change between versions), injectivity,
byte-identical fallback to Rucio's hash layout, and S3/POSIX safety."""

from __future__ import annotations

import itertools

import pytest
from rucio.rse.translation import RSEDeterministicTranslation

from inlet.policies import SUPPORTED_VERSION, get_algorithms
from inlet.policies.lfn2pfn import ALGORITHM_NAME, UnsafePath, check_path, hash_path, path_for, run_partitioned
from inlet.policies.naming import NamingSettings

# Pinned: changing any line here moves files that are already stored. Never edit, only append.
PINNED = [
    ("cygno.raw", "run012345.mid.gz", "cygno.raw/0012/012345/run012345.mid.gz"),
    ("cygno.raw", "run000001.mid.gz", "cygno.raw/0000/000001/run000001.mid.gz"),
    ("cygno.raw", "run999999.mid.gz", "cygno.raw/0999/999999/run999999.mid.gz"),
    ("cygno.raw", "run012345_pmt_0001.mid.gz", "cygno.raw/0012/012345/run012345_pmt_0001.mid.gz"),
    ("cygno.reco", "run012345_reco_v2.root", "cygno.reco/0012/012345/run012345_reco_v2.root"),
    ("kloe.raw", "run005000_ksl_0001.ybos", "kloe.raw/0005/005000/run005000_ksl_0001.ybos"),
    # Not run files: Rucio's hash layout, unchanged.
    ("cygno.raw", "run012345.raw", "cygno.raw/11/f3/run012345.raw"),
    ("test", "smoke-0123456789ab.dat", "test/2b/73/smoke-0123456789ab.dat"),
    ("user.jdoe", "f.dat", "user/jdoe/14/eb/f.dat"),
]


@pytest.mark.parametrize(("scope", "name", "path"), PINNED)
def test_pinned_table(scope: str, name: str, path: str) -> None:
    assert run_partitioned(scope, name, "ANY_RSE", {}, {}) == path


@pytest.mark.parametrize(
    ("scope", "name"), [("test", "a.dat"), ("user.jdoe", "x/y.root"), ("cygno.raw", "run000001.raw")]
)
def test_fallback_is_rucios_hash(scope: str, name: str) -> None:
    rucio_hash = RSEDeterministicTranslation._get_one_algorithm("lfn2pfn", "hash")
    assert hash_path(scope, name) == rucio_hash(scope, name, "RSE", {}, {})


def test_collision_free_over_many_names() -> None:
    naming = NamingSettings()
    dids = [("cygno.raw", f"run{r:06d}.mid.gz") for r in range(0, 20000, 7)]
    dids += [
        ("cygno.raw", f"run{r:06d}_{s}_{q:04d}.mid.gz") for r, s, q in itertools.product(range(50), "ab", range(20))
    ]
    dids += [("cygno.raw", f"run{r:06d}.raw") for r in range(2000)]
    dids += [("test", f"f{i}.dat") for i in range(2000)]
    dids += [("kloe.raw", f"run{r:06d}_ksl_0001.ybos") for r in range(2000)]
    paths = {path_for(s, n, naming) for s, n in dids}
    assert len(paths) == len(set(dids))


def test_one_run_is_one_directory() -> None:
    naming = NamingSettings()
    dirs = {path_for("cygno.raw", f"run000042_pmt_{q:04d}.mid.gz", naming).rsplit("/", 1)[0] for q in range(100)}
    assert dirs == {"cygno.raw/0000/000042"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("s/0000/000001/" + "a" * 300, "POSIX limit"),
        ("s/0000/000001/" + "/".join(["a" * 200] * 6), "S3 key limit"),
        ("s/0000/000001/a//b", "empty"),
        ("s/0000/000001/../x", "'..'"),
        ("s/0000/000001/a\\b", "backslash"),
    ],
)
def test_unsafe_paths_refused(path: str, message: str) -> None:
    with pytest.raises(UnsafePath, match=message):
        check_path(path)


def test_registered_for_rucio() -> None:
    assert get_algorithms() == {"lfn2pfn": {ALGORITHM_NAME: run_partitioned}}
    from packaging.specifiers import SpecifierSet
    from rucio.version import current_version

    assert current_version() in SpecifierSet(SUPPORTED_VERSION)
