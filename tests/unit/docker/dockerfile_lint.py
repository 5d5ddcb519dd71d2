"""Dockerfile rules the deployment's images keep; each returns the problems it finds (empty: clean).

Rules, not style: each one stands for a failure seen in production images (a moving base tag,
a password in the image history, a root daemon, a layer that reinstalls every dependency on a
one-line code change, a container nobody can tell is healthy).
"""

from __future__ import annotations

import re

from tests.unit.docker.deployment import Dockerfile

# `pip install [options] . [more]` (the project from its pyproject.toml), in any RUN.
_PIP_INSTALL_PROJECT = re.compile(r"pip\"?\s+install\s+(--?\S+\s+)*\.(\s|$)")
_SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|_KEY\b|ACCESS_KEY|PRIVATE", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)=(\"[^\"]*\"|\S*)")
_ROOT = ("root", "0")
#: Rucio's official images, used as they are: their entry scripts (rucio.cfg from RUCIO_CFG_*,
#: memcached, httpd on :80 or rucio-$RUCIO_DAEMON) run as root, as in rucio/containers and the
#: Helm charts. A layer on them adds files only; it keeps their user, ENTRYPOINT and CMD.
OFFICIAL_RUCIO_IMAGES = ("rucio/rucio-server", "rucio/rucio-daemons")


def official_rucio_base(df: Dockerfile, target: str | None = None) -> bool:
    """The stage is built on one of Rucio's official images (directly or through this file's stages)."""
    return df.chain(target)[0].base.split(":")[0] in OFFICIAL_RUCIO_IMAGES


def unpinned_bases(df: Dockerfile) -> list[str]:
    """FROM an external image must name a versioned tag (not latest, not an ARG)."""
    out = []
    stage_names = {st.name for st in df.stages}
    for st in df.stages:
        if st.base in stage_names:
            continue
        image = st.base
        name, _, tag = image.partition("@")[0].rpartition(":")
        if "$" in image:
            out.append(f"FROM {image}: resolve ARGs in FROM so that the pin is visible")
        elif not name or not tag:
            out.append(f"FROM {image}: no tag")
        elif tag == "latest" or not re.search(r"\d", tag):
            out.append(f"FROM {image}: pin a versioned tag")
    return out


def baked_secrets(df: Dockerfile) -> list[str]:
    """No ENV/ARG/LABEL with a secret's name and a value, no secret ARG at all, none in a RUN."""
    out = []
    for st in df.stages:
        for ins in ("ENV", "ARG", "LABEL"):
            for rest in st.all(ins):
                for key, value in _ASSIGNMENT.findall(rest):
                    if _SECRET_WORDS.search(key) and value.strip('"'):
                        out.append(f"{ins} {key}=...: a secret in the image")
                if ins == "ARG" and "=" not in rest and _SECRET_WORDS.search(rest):
                    out.append(f"ARG {rest}: build args end up in the image history")
        for rest in st.all("RUN"):
            if re.search(r"(password|secret)\s*[=:]\s*\S", rest, re.IGNORECASE):
                out.append("RUN holds a secret")
    return out


def root_stages(df: Dockerfile) -> list[str]:
    """A stage that sets USER must not end as root (the final image runs as its last USER).

    Except a layer on Rucio's official images, whose entry scripts need root; it must then not
    change the entry point either (checked by ``official_entry_kept``)."""
    if official_rucio_base(df):
        return []
    out = []
    for st in df.stages:
        users = st.all("USER")
        if users and users[-1].split(":")[0] in _ROOT:
            out.append(f"stage {st.name} ends as root")
    final = df.effective(None, "USER")
    if final is None or final.split(":")[0] in _ROOT:
        out.append(f"the image runs as {final or 'root (no USER)'}")
    return out


def package_hygiene(df: Dockerfile) -> list[str]:
    """apt: --no-install-recommends, update in the same layer, lists removed; dnf: no weak deps, cleaned."""
    out = []
    for st in df.stages:
        env = " ".join(st.all("ENV"))
        for rest in st.all("RUN"):
            if "apt-get install" in rest:
                if "--no-install-recommends" not in rest:
                    out.append("apt-get install without --no-install-recommends")
                if "apt-get update" not in rest:
                    out.append("apt-get install in a layer without apt-get update (stale lists)")
                if "rm -rf /var/lib/apt/lists" not in rest:
                    out.append("apt lists left in the layer")
            if re.search(r"\b(dnf|yum) +(-y +)?install\b", rest):
                if "install_weak_deps=False" not in rest:
                    out.append("dnf install pulls weak dependencies")
                if "clean all" not in rest:
                    out.append("dnf cache left in the layer")
            if (
                "pip" in rest
                and " install" in rest
                and "PIP_NO_CACHE_DIR=1" not in env
                and "--no-cache-dir" not in rest
            ):
                out.append("pip's cache left in the layer")
    return out


def cache_order(df: Dockerfile) -> list[str]:
    """pyproject.toml copied and dependencies installed before the source; the source --no-deps."""
    out = []
    for st in df.stages:
        order = [(ins, rest) for ins, rest in st.instructions if ins in ("COPY", "RUN")]
        copies = [i for i, (ins, _) in enumerate(order) if ins == "COPY"]
        src = [i for i in copies if re.search(r"(^|\s)inlet(/|\s|$)", order[i][1])]
        if not src:
            continue
        pyproject = [i for i in copies if "pyproject.toml" in order[i][1]]
        installs = [i for i, (ins, rest) in enumerate(order) if ins == "RUN" and _PIP_INSTALL_PROJECT.search(rest)]
        if not pyproject or pyproject[0] > src[0]:
            out.append("COPY pyproject.toml must come before COPY inlet")
        elif not installs or not pyproject[0] < installs[0] < src[0]:
            out.append("install the dependencies (pip install .) before COPY inlet")
        if not any(i > src[0] and "--no-deps" in order[i][1] for i in installs):
            out.append("install inlet itself with --no-deps after COPY inlet")
    return out


def missing_health_or_entry(df: Dockerfile) -> list[str]:
    out = []
    if df.effective(None, "HEALTHCHECK") in (None, "NONE"):
        out.append("no HEALTHCHECK")
    for st in df.stages:
        if official_rucio_base(df, st.name):
            continue  # the official ENTRYPOINT, inherited
        if not (df.effective(st.name, "CMD") or df.effective(st.name, "ENTRYPOINT")):
            out.append(f"stage {st.name} runs nothing")
    return out


def official_entry_kept(df: Dockerfile) -> list[str]:
    """A layer on an official Rucio image keeps its entry point, user and Python (adds files only)."""
    if not official_rucio_base(df):
        return []
    out = []
    for st in df.stages:
        out += [f"{ins} overrides the official entry script" for ins in ("ENTRYPOINT", "CMD") if st.all(ins)]
        out += [f"USER {u}: the official entry scripts run as root" for u in st.all("USER") if u not in _ROOT]
        for rest in st.all("RUN"):
            if re.search(r"\b(dnf|yum|microdnf)\b", rest) or re.search(r"python3\.\d+|\bvenv\b|virtualenv", rest):
                out.append("a second Python or system packages: the layer installs into the image's python3 only")
            if re.search(r"pip install(?![^&;|]*--no-deps)", rest):
                out.append("pip install without --no-deps could add or move what Rucio pinned")
            if re.search(r"pip install[^&;|]*\brucio[\[=<> ]", rest):
                out.append("a second Rucio")
    return out


def remote_code(df: Dockerfile) -> list[str]:
    """No ADD from a URL (unpinned, unchecked), no download piped into a shell."""
    out = []
    for st in df.stages:
        out += [f"ADD {rest}: from a URL" for rest in st.all("ADD") if "://" in rest]
        out += [
            "a download piped into a shell"
            for rest in st.all("RUN")
            if re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", rest)
        ]
    return out


RULES = (
    unpinned_bases,
    baked_secrets,
    root_stages,
    package_hygiene,
    cache_order,
    missing_health_or_entry,
    remote_code,
    official_entry_kept,
)
