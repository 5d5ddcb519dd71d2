#!/bin/sh
# Entry of inlet's images: make sure Rucio's configuration exists, then run the command.
#
# Rucio reads RUCIO_CONFIG once, at import, so the file must be there before the command starts.
# When RUCIO_CFG_* variables or RUCIO_OVERRIDE_CONFIGS are set (the official Rucio images'
# conventions, which docker/compose.yaml and the Helm charts follow), Rucio's own merge tool writes
# the file from the RUCIO_OVERRIDE_CONFIGS files or directories (the charts' conf.d JSON) and then
# the variables, at every start, so it never outlives a changed docker/.env. A site that keeps its
# own rucio.cfg mounts it, points RUCIO_CONFIG at it and sets neither.
set -eu

if env | grep -q '^RUCIO_CFG_' || [ -n "${RUCIO_OVERRIDE_CONFIGS:-}" ]; then
    umask 077  # the file holds passwords
    mkdir -p "$(dirname "$RUCIO_CONFIG")"
    # RUCIO_OVERRIDE_CONFIGS is a list of paths, as in the official images: split on purpose.
    # shellcheck disable=SC2086
    python "$VIRTUAL_ENV/rucio/tools/merge_rucio_configs.py" --use-env \
        ${RUCIO_OVERRIDE_CONFIGS:+-s $RUCIO_OVERRIDE_CONFIGS} -d "$RUCIO_CONFIG"
    if [ -n "${RUCIO_CFG_ALEMBIC_CFG:-}" ]; then
        # Only the catalogue bootstrap needs it (build_database stamps alembic): the same file the
        # lake writes, rendered by the lake's own function.
        python - <<'EOF'
import os
from pathlib import Path

from inlet.lake.rucio_cfg import render_alembic_ini
from inlet.lake.services.base import LakePaths

ini = Path(os.environ["RUCIO_CFG_ALEMBIC_CFG"])
ini.parent.mkdir(parents=True, exist_ok=True)
ini.write_text(render_alembic_ini(LakePaths(ini.parent), os.environ["RUCIO_CFG_DATABASE_DEFAULT"]))
EOF
    fi
elif [ ! -f "$RUCIO_CONFIG" ]; then
    echo "error: no Rucio configuration: $RUCIO_CONFIG does not exist, and neither RUCIO_CFG_* nor RUCIO_OVERRIDE_CONFIGS is set" >&2
    echo "fix: pass RUCIO_CFG_* variables (docker/compose.yaml does) or RUCIO_OVERRIDE_CONFIGS, or mount your site's rucio.cfg and set RUCIO_CONFIG to it" >&2
    exit 2
fi

exec "$@"
