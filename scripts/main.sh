#!/usr/bin/env bash
# README's first command: install what is missing, start the embedded lake, run the main job:
# a short dress rehearsal (inlet rehearse, 2 minutes of 1-second chunks at 1 Hz by default).
# Extra arguments go to `inlet rehearse` (e.g. --duration 600, --speedup 10, --also S3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/inlet rehearse "$@"
