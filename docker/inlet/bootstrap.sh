#!/bin/sh
# One-shot set-up of a deployment: what `inlet lake up` does on a first start, by the same code.
#
# `inlet-bootstrap rucio` (the rucio-init service, which holds Rucio's database login):
#   1. Rucio's catalogue: schema, base VO, root account and its identity
#      (python -m inlet.lake.rucio_bootstrap), which the Rucio server needs before it can start;
#   2. the flow daemons' wake-up triggers on Rucio's tables (install_wake_triggers of
#      inlet.plugins.flow_daemons, which `inlet lake up` calls too) on [database] default of the
#      rucio.cfg the entrypoint wrote. The daemons run with --wake; without the triggers (a
#      failure here is a warning, not fatal) they still work, a pass every --idle seconds.
# `inlet-bootstrap` (the bootstrap service, a Rucio client without the database password):
#   1. the S3 RSE's bucket          (inlet.lake.services.s3, as the lake's S3 endpoint does);
#   2. the POSIX RSEs' directories  and the topology: RSEs, protocols, attributes, distances,
#      account limits, scopes       (inlet.lake.topology, fed the lake's own topology as JSON);
#   3. the run catalogue's schema   (inlet catalog upgrade).
# Every step looks before it creates: re-run it at any time (`docker compose run --rm bootstrap`).
set -eu

if [ "${1:-}" = "rucio" ]; then
    echo "bootstrap: Rucio catalogue"
    python -m inlet.lake.rucio_bootstrap
    echo "bootstrap: flow daemons' wake-up triggers"
    python - <<'EOF'
import sys

from rucio.common.config import config_get

from inlet.errors import InletError
from inlet.plugins.flow_daemons import install_wake_triggers

try:
    install_wake_triggers(config_get("database", "default"))
except InletError as exc:
    # Not fatal: the daemons work without them, at the idle pace (docker/README.md).
    print(f"warning: {exc}\n  meanwhile the flow daemons run a pass every --idle seconds", file=sys.stderr)
EOF
    echo "bootstrap: Rucio done"
    exit 0
fi
: "${RSE_ROOT:=/srv/rse}"
export RSE_ROOT

echo "bootstrap: S3 bucket"
python - <<'EOF'
from inlet.config import load_settings
from inlet.lake.services.base import LakePaths
from inlet.lake.services.s3 import S3Endpoint

settings = load_settings()
S3Endpoint(settings, LakePaths(settings.lake.state_dir)).after_start()
EOF

echo "bootstrap: RSE directories under $RSE_ROOT"
python - <<'EOF'
import os
from pathlib import Path

from inlet.config import load_settings
from inlet.lake.topology import lake_topology

s = load_settings()
for rse in lake_topology(os.environ["RSE_ROOT"], s.s3.endpoint, s.s3.bucket, s).rses:
    if rse.protocols[0].scheme == "file":
        Path(rse.protocols[0].prefix).mkdir(parents=True, exist_ok=True)
EOF

echo "bootstrap: topology"
python -c 'import os
from inlet.config import load_settings
from inlet.lake.topology import lake_topology
s = load_settings()
print(lake_topology(os.environ["RSE_ROOT"], s.s3.endpoint, s.s3.bucket, s).to_json())' \
    | python -m inlet.lake.topology -

echo "bootstrap: run catalogue schema"
inlet catalog upgrade

echo "bootstrap: done"
