#!/usr/bin/env bash
# Idempotent set-up of everything inlet needs on Debian 12 (run as root, or with sudo rights).
# Installs only what is missing: apt packages, the project venv (.venv), the S3 endpoint's own
# venv (.venv-s3, moto's pins clash with rucio's), and the link to Debian's gfal2 binding.
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
              redis-server memcached postgresql mariadb-server python3-venv python3-dev)
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

stamp() { sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ "$(cat .venv/.inlet-stamp 2>/dev/null)" != "$(stamp)" ]; then
  log "installing inlet and its dependencies into .venv"
  pipq .venv/bin/python -m pip install -q --upgrade pip
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
log "ready: $(.venv/bin/inlet --version)"
