#!/usr/bin/env bash
# Installs the client libraries the tests drive Cabildo with, pinned in tests/clients: the
# official OpenAI Python package into tests/clients/.venv; the official OpenAI npm package and
# axe-core (the accessibility checker tests/browser.rs injects into Chromium) into
# tests/clients/node_modules, from package-lock.json. Quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt; then
    echo "error: could not install tests/clients/requirements.txt (PyPI reachable?)" >&2
    exit 1
fi
if ! npm ci --silent --no-audit --no-fund; then
    echo "error: npm ci failed in tests/clients (npm registry reachable? Node.js 20+?)" >&2
    exit 1
fi
