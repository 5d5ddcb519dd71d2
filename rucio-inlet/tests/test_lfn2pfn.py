"""Run-partitioned paths: a pinned table (paths must never change between versions), injectivity,
byte-identical fallback to Rucio's hash layout, and S3/POSIX safety."""

from __future__ import annotations

import itertools
import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rucio.rse.translation import RSEDeterministicTranslation

from rucio_inlet import SUPPORTED_VERSION, get_algorithms
from rucio_inlet.lfn2pfn import (
    ALGORITHM_NAME,
    UnsafePath,
    check_path,
    hash_path,
    lfn2pfn,
    path_for,
    run_partitioned,
    stays_under,
)
from rucio_inlet.naming import NamingSettings

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
        ("/abs/x", "absolute"),
        ("s/ab/cd/a\nb", "control character"),
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


# -- confinement: every path the algorithms return stays under the RSE prefix ------------------
_segment = st.one_of(
    st.text("abcXYZ019._-", min_size=1, max_size=6), st.sampled_from(["", ".", "..", "..."]), st.text(max_size=3)
)
_names = st.lists(_segment, min_size=1, max_size=6).map("/".join)
_scopes = st.sampled_from(["test", "user.jdoe", "group.phys", "cygno.raw", "kloe.raw"])


@settings(max_examples=500, deadline=None)
@given(_scopes, _names, st.sampled_from(["/data/SITE_A_DISK/", "/b/", "/srv/rse/X"]))
def test_every_path_stays_under_the_prefix(scope: str, name: str, prefix: str) -> None:
    for algorithm in (run_partitioned, lfn2pfn):
        try:
            path = algorithm(scope, name, "RSE", {}, {})
        except UnsafePath:
            with pytest.raises(UnsafePath, match="refusing a storage path"):
                algorithm(scope, name, "RSE", {}, {})
            continue
        assert stays_under(prefix, path)
        # Nothing for any normalisation to change: the file is where the plain join says.
        joined = prefix.rstrip("/") + "/" + path
        assert posixpath.normpath(joined) == joined


def test_the_issues_alias_is_refused_by_every_layout() -> None:
    name = "/../../../../cygno.raw/0912/912345/run912345.mid.gz"
    for algorithm in (run_partitioned, lfn2pfn):
        with pytest.raises(UnsafePath, match="could leave the RSE prefix"):
            algorithm("test", name, "SITE_A_DISK", {}, {})


@pytest.mark.parametrize(("scope", "name", "path"), PINNED)
def test_default_algorithm_is_rucios_hash_for_safe_names(scope: str, name: str, path: str) -> None:
    assert lfn2pfn(scope, name, "RSE", {}, {}) == hash_path(scope, name)


def test_policy_package_default_replaces_rucios_hash() -> None:
    # Rucio takes the policy package's default from <package>.lfn2pfn.lfn2pfn (rucio.common.plugins).
    import importlib

    assert importlib.import_module("rucio_inlet.lfn2pfn").lfn2pfn is lfn2pfn


@pytest.mark.parametrize(
    ("prefix", "path", "inside"),
    [
        ("/d/R/", "s/a", True),
        ("/d/R", "../R2/s", False),
        ("/d/R/", "", False),
        ("/", "a", True),
        ("/d/R/", "a/../../x", False),
    ],
)
def test_stays_under(prefix: str, path: str, inside: bool) -> None:
    assert stays_under(prefix, path) is inside
