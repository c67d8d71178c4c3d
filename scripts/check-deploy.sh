#!/usr/bin/env bash
# Checks deploy/ on a machine without a container daemon or a cluster: lints and renders the
# Helm chart with Helm's own engine and checks the manifests and the compose file
# (deploy/check.py). Installs what it needs into deploy/.venv from PyPI; quick when present.
set -euo pipefail
"$(dirname "$0")/python-venv.sh" "$(dirname "$0")/../deploy"
cd "$(dirname "$0")/../deploy"
exec .venv/bin/python check.py
