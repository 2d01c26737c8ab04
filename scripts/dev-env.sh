#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv `.venv` holding `moto[server]`,
# the local S3/DynamoDB server the integration tests start on a free port, and
# `pyarrow`, the standard Parquet writer the feature-reader tests use to write
# files of every logical type (generated at test time, never committed).
# Safe to run repeatedly: an existing venv that already has both is kept.
#
# Usage: scripts/dev-env.sh
# Env:   PYTHON  interpreter to build the venv with (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv

if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c 'import moto, pyarrow' >/dev/null 2>&1; then
    echo "moto_server and pyarrow already installed in $VENV"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        # Debian/Ubuntu ship venv separately; install it when we can.
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            apt-get update -qq && apt-get install -y -qq python3-venv
            rm -rf "$VENV"
            "$PYTHON" -m venv "$VENV"
        else
            echo "error: '$PYTHON -m venv' failed; install python3-venv" >&2
            exit 1
        fi
    fi
fi

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' 'pyarrow>=14'
"$VENV/bin/moto_server" --help >/dev/null
"$VENV/bin/python" -c 'import pyarrow.parquet' >/dev/null
echo "moto_server and pyarrow installed in $VENV"
