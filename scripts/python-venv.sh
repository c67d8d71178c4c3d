#!/usr/bin/env bash
# Installs DIR/requirements.txt into DIR/.venv (made if absent); quick when already installed.
# Shared by the scripts that need pinned PyPI packages (setup-clients.sh, check-deploy.sh).
set -euo pipefail
dir=${1:?usage: scripts/python-venv.sh DIR}
if [ ! -x "$dir/.venv/bin/python" ]; then
    python3 -m venv "$dir/.venv"
fi
if ! "$dir/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$dir/requirements.txt"; then
    echo "error: could not install $dir/requirements.txt (PyPI reachable?)" >&2
    exit 1
fi
