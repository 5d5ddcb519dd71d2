#!/usr/bin/env bash
# Idempotent set-up of everything inlet needs on Debian 12 (run as root, or with sudo rights).
# Installs only what is missing: apt packages, the project venv (.venv), the S3 endpoint's own
# venv (.venv-s3, moto's pins clash with rucio's), the link to Debian's gfal2 binding, and the
# Python 3.9 venv (.venv-py39: rucio 41.5.1 + ./rucio-inlet, as in Rucio's official images).
# Re-running it when everything is present takes about a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[setup] %s\n' "$*" >&2; }
# One set-up at a time: parallel callers (CI, test sessions) would race on the same venv.
exec 9>"$ROOT/.setup.lock"
flock 9
# pip's configured local indexes may be absent: hide that noise, keep real errors.
pipq() { "$@" 2> >(grep -v "WARNING: Location 'file:" >&2); }

APT_PACKAGES=(activemq default-jre-headless python3-gfal2 gfal2-plugin-file gfal2-plugin-http
              redis-server memcached postgresql mariadb-server python3-venv python3-dev
              chromium chromium-driver libxstream-java libjettison-java)
# chromium*: inlet web's browser tests (Selenium); libxstream/libjettison: ActiveMQ statistics as JSON
# over STOMP (broker queue depth), jars the official ActiveMQ distribution ships and Debian's leaves out.
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d may refuse to start services in containers: that is fine, the lake runs its own.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python3-gfal2 is built for CPython 3.11: the venv must use a 3.11 interpreter.
PY="${INLET_PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 /usr/bin/python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$(command -v "$c")"; break
    fi
  done
fi
[ -n "$PY" ] || { log "no Python 3.11 found (Debian 12's python3 is 3.11): install python3 or set INLET_PYTHON"; exit 1; }

stamp() { sha256sum pyproject.toml rucio-inlet/pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ "$(cat .venv/.inlet-stamp 2>/dev/null)" != "$(stamp)" ]; then
  log "installing inlet and its dependencies into .venv"
  pipq .venv/bin/python -m pip install -q --upgrade pip
  # rucio-inlet first: inlet depends on it, and it is not on an index (one source of truth: ./rucio-inlet).
  pipq .venv/bin/python -m pip install -q -e ./rucio-inlet
  pipq .venv/bin/python -m pip install -q -e ".[dev]"
  stamp > .venv/.inlet-stamp
fi

SITE="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
GFAL_SO="$(ls /usr/lib/python3/dist-packages/gfal2.cpython-311-*.so 2>/dev/null | head -n1 || true)"
[ -n "$GFAL_SO" ] || { log "python3-gfal2 is installed but its CPython 3.11 module is missing"; exit 1; }
ln -sf "$GFAL_SO" "$SITE/$(basename "$GFAL_SO")"
.venv/bin/python -c 'import gfal2' || { log "gfal2 does not import in .venv"; exit 1; }

if [ ! -x .venv-s3/bin/moto_server ]; then
  log "creating .venv-s3 with moto[server] (the local S3 endpoint)"
  "$PY" -m venv .venv-s3
  pipq .venv-s3/bin/python -m pip install -q --upgrade pip
  pipq .venv-s3/bin/python -m pip install -q "moto[server]>=5,<6"
fi
# -- Python 3.9: what Rucio's official images run (AlmaLinux 9). The package's tests run on it, and
# the lake can run Rucio's server and daemons from it ([lake] rucio_python).
find_py39() {
  local c
  for c in "${INLET_PYTHON39:-}" "$HOME"/.pyenv/versions/3.9.*/bin/python python3.9 /usr/bin/python3.9; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}
PY39="$(find_py39 || true)"
if [ -z "$PY39" ] && [ -f /etc/debian_version ] && grep -q '^12' /etc/debian_version; then
  # No pyenv: Debian 12 has no 3.9, Debian 11 (bullseye) does, from the same Debian mirror. Pinned at
  # priority 100, bullseye only provides what is asked for by name and never upgrades bookworm packages.
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "no Python 3.9: installing Debian 11's python3.9 (pinned, bookworm packages untouched)"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bullseye\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | $SUDO tee /etc/apt/sources.list.d/inlet-bullseye.sources >/dev/null
  printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' | $SUDO tee /etc/apt/preferences.d/inlet-bullseye.pref >/dev/null
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bullseye python3.9 >/dev/null
  PY39="$(find_py39 || true)"
fi
[ -n "$PY39" ] || { log "no Python 3.9 (pyenv, python3.9, or Debian 11's package): install one or set INLET_PYTHON39"; exit 1; }
stamp39() { sha256sum rucio-inlet/pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }
if [ ! -x .venv-py39/bin/pip ]; then
  log "creating .venv-py39 with $PY39"
  if "$PY39" -c 'import ensurepip' 2>/dev/null; then
    "$PY39" -m venv .venv-py39
  else
    # Debian's python3.9 has no ensurepip (python3.9-venv needs bullseye's pip wheel, which clashes
    # with bookworm's): bootstrap pip from its own PyPI wheel, run as a zip ("python pip.whl/pip").
    "$PY39" -m venv --without-pip .venv-py39
    whl_dir="$(mktemp -d)"
    pipq .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 "pip<25.3" -d "$whl_dir"
    whl="$(ls "$whl_dir"/pip-*.whl)"
    .venv-py39/bin/python "$whl/pip" install -q "$whl"
    rm -rf "$whl_dir"
  fi
fi
if [ "$(cat .venv-py39/.inlet-stamp 2>/dev/null)" != "$(stamp39)" ]; then
  log "installing rucio 41.5.1 and rucio-inlet into .venv-py39"
  # gunicorn: the lake serves Rucio's REST app with it; pymysql: a MariaDB run catalogue for runmeta.
  pipq .venv-py39/bin/python -m pip install -q \
    "rucio[postgresql]==41.5.1" "gunicorn>=22" "pymysql>=1.1" "pytest>=8" "hypothesis>=6.100" -e ./rucio-inlet
  stamp39 > .venv-py39/.inlet-stamp
fi
log "ready: $(.venv/bin/inlet --version); Rucio-side Python: $(.venv-py39/bin/python -c 'import platform; print(platform.python_version())')"
