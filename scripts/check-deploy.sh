#!/usr/bin/env bash
# Checks deploy/ on a machine without a container daemon or a cluster: lints and renders the
# Helm chart with Helm's own engine and checks the manifests and the compose file
# (deploy/check.py). Installs what it needs into deploy/.venv from PyPI; quick when present.
set -euo pipefail
cd "$(dirname "$0")/../deploy"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt; then
    echo "error: could not install deploy/requirements.txt (PyPI reachable?)" >&2
    exit 1
fi
exec .venv/bin/python check.py
