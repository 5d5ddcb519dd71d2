#!/usr/bin/env bash
# README's second command: install what is missing, lint, type-check, then run every test:
# rucio-inlet's tests on Python 3.11 (.venv) and 3.9 (.venv-py39, as in Rucio's official images),
# then inlet's unit tests and the integration tests on a real local lake started once by the
# fixture, with the lake's Rucio server and rucio-* daemons on the 3.9 venv ([lake] rucio_python).
# Extra arguments go to the last pytest alone, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
.venv/bin/ruff check inlet tests benchmarks rucio-inlet
.venv/bin/mypy
no_tests() { echo "pytest collected no tests ($1): that is a failure here" >&2; exit 1; }
if [ "$#" -eq 0 ]; then
  for py in .venv/bin/python .venv-py39/bin/python; do
    set +e
    (cd rucio-inlet && "../$py" -m pytest -q -p no:cacheprovider)
    rc=$?
    set -e
    [ "$rc" -eq 5 ] && no_tests "rucio-inlet on $py"
    [ "$rc" -eq 0 ] || exit "$rc"
  done
fi
export INLET_LAKE__RUCIO_PYTHON="${INLET_LAKE__RUCIO_PYTHON:-$ROOT/.venv-py39/bin/python}"
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
[ "$rc" -eq 5 ] && no_tests "inlet"
exit "$rc"
