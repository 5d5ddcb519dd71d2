#!/bin/sh
# Entry of inlet's Rucio images (rucio-server, rucio-daemons).
#
# It keeps the official images' conventions: a rucio.cfg mounted at /opt/rucio/etc/rucio.cfg
# wins; otherwise one is merged by Rucio's own tool from the image's defaults
# (/tmp/rucio.config.default.cfg), the files of RUCIO_OVERRIDE_CONFIGS and the RUCIO_CFG_*
# variables; RUCIO_DAEMON names the daemon and RUCIO_DAEMON_ARGS its arguments. What differs, and why:
# - Rucio runs from /opt/inlet, a Python 3.11 venv with the same Rucio release plus inlet's policy
#   package and plugins: the official images' interpreter (AlmaLinux 9's python3, 3.9) is older
#   than inlet supports, so the policy package could not load there;
# - the server is gunicorn serving Rucio's Flask app, as `inlet lake` runs it, instead of Apache
#   with a mod_wsgi built for that 3.9 interpreter. TLS: a reverse proxy in front, or
#   RUCIO_TLS_CERT / RUCIO_TLS_KEY (see docker/README.md).
set -eu
# Overridable only so that the unit tests can run this script outside the image.
VENV=${START_VENV:-/opt/inlet}
SITE_CFG=${START_SITE_CFG:-/opt/rucio/etc/rucio.cfg}
STATE=${START_STATE_DIR:-/var/lib/inlet}

if [ -f "$SITE_CFG" ]; then
    RUCIO_CONFIG=$SITE_CFG
else
    RUCIO_CONFIG=$STATE/rucio/rucio.cfg
    (
        umask 077  # the file holds passwords
        mkdir -p "$(dirname "$RUCIO_CONFIG")"
        "$VENV/bin/python" "$VENV/rucio/tools/merge_rucio_configs.py" --use-env \
            -s /tmp/rucio.config.default.cfg ${RUCIO_OVERRIDE_CONFIGS:-} -d "$RUCIO_CONFIG"
    )
fi
export RUCIO_CONFIG
if [ -n "${RUCIO_PRINT_CFG:-}" ]; then
    # Passwords masked: the log of a container is read by more people than its config.
    sed -E 's/^(password|userpass_pwd|default|inlet_catalog_url)( *=).*/\1\2 ***/' "$RUCIO_CONFIG"
fi

case "${1:-daemon}" in
    server)
        set -- --bind "0.0.0.0:${RUCIO_PORT:-8080}" --workers "${RUCIO_WORKERS:-4}" --timeout 120 \
            --no-control-socket --access-logfile - --error-logfile -
        if [ -n "${RUCIO_TLS_CERT:-}" ]; then
            set -- "$@" --certfile "$RUCIO_TLS_CERT" --keyfile "${RUCIO_TLS_KEY:?RUCIO_TLS_KEY must go with RUCIO_TLS_CERT}"
        fi
        exec "$VENV/bin/gunicorn" "$@" rucio.web.rest.flaskapi.v1.main:application
        ;;
    daemon)
        if [ -z "${RUCIO_DAEMON:-}" ]; then
            echo "error: RUCIO_DAEMON is not set; fix: set it to a daemon name, e.g. judge-evaluator" >&2
            exit 2
        fi
        # RUCIO_DAEMON_ARGS is a list of words, as in the official images: split on purpose.
        # shellcheck disable=SC2086
        exec "$VENV/bin/rucio-$RUCIO_DAEMON" ${RUCIO_DAEMON_ARGS:-}
        ;;
    *)
        exec "$@"
        ;;
esac
