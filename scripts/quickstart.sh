#!/usr/bin/env bash
# Installs the model files, builds cabildo, ingests the shared corpus (or the bundled sample
# when it is absent) into ./data with the embedded default (tantivy + SQLite), and searches.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-models.sh
corpus=../shared/corpus
[ -d "$corpus" ] || corpus=samples
cargo run --locked -q -p cabildo-cli -- ingest "$corpus" --data data
cargo run --locked -q -p cabildo-cli -- search "derecho de propiedad" --k 3 --data data
cargo run --locked -q -p cabildo-cli -- models list
