#!/usr/bin/env bash
# Installs the model files of config/models.lock (see scripts/setup_models.py).
# Usage: scripts/setup-models.sh [MODEL...]
set -euo pipefail
exec python3 "$(dirname "$0")/setup_models.py" "$@"
