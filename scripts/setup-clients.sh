#!/usr/bin/env bash
# Installs the client libraries the tests drive Cabildo with, pinned in tests/clients: the
# official OpenAI Python package into tests/clients/.venv; the official OpenAI npm package and
# axe-core (the accessibility checker tests/browser.rs injects into Chromium) into
# tests/clients/node_modules, from package-lock.json. Quick when already installed.
set -euo pipefail
"$(dirname "$0")/python-venv.sh" "$(dirname "$0")/../tests/clients"
cd "$(dirname "$0")/../tests/clients"
if ! npm ci --silent --no-audit --no-fund; then
    echo "error: npm ci failed in tests/clients (npm registry reachable? Node.js 20+?)" >&2
    exit 1
fi
