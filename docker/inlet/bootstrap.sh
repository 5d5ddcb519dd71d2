#!/bin/sh
# One-shot set-up of a deployment: what `inlet lake up` does on a first start, by the same code.
#   1. the S3 RSE's bucket          (inlet.lake.services.s3, as the lake's S3 endpoint does);
#   2. the POSIX RSEs' directories  and the topology: RSEs, protocols, attributes, distances,
#      account limits, scopes       (inlet.lake.topology, fed the lake's own topology as JSON);
#   3. the run catalogue's schema   (inlet catalog upgrade).
# The Rucio catalogue itself (schema, root account, identity) is the rucio-init service's job
# (python -m inlet.lake.rucio_bootstrap), because the Rucio server needs it before it can start.
# Every step looks before it creates: re-run it at any time (`docker compose run --rm bootstrap`).
set -eu
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
