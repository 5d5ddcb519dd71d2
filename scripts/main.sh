#!/usr/bin/env bash
# README's first command: install what is missing, then run the main job on an embedded lake.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/inlet smoke "$@"
