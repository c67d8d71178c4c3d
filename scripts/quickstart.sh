#!/usr/bin/env bash
# Installs the model files, builds cabildo, and runs the main job on the embedded default
# (tantivy + SQLite + the in-process Qdrant engine, no other service): ingests the Chilean
# Constitution from ../shared/corpus and the bundled CC0 Peruvian Constitution into ./data,
# embedding every article with e5-small, then asks a question in a citizen's words.
#
# Embedding is the slow part on a CPU (~1,500 tokens/s on two cores): these two documents
# take about two minutes. The whole ../shared/corpus takes ~40 minutes that way, or two
# seconds lexical-only: `cabildo ingest ../shared/corpus --no-dense --data DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-models.sh
# The same build as scripts/test.sh (every target of the workspace), so the two share one
# compilation instead of resolving features twice.
cargo build --locked -q --workspace --all-targets
cabildo() { "${CARGO_TARGET_DIR:-target}/debug/cabildo" "$@"; }
paths=(samples)
chile=../shared/corpus/cl/leychile-md/constitucion
[ -d "$chile" ] && paths+=("$chile")
cabildo ingest "${paths[@]}" --data data
cabildo search "¿desde qué edad se puede votar en Chile?" --k 3 --data data
# A cited answer, quoted from the articles (`--generator extractive`, instant). Without the
# flag the local model writes it (Qwen2.5 0.5B on the CPU: ~20 s here, and a 0.5B model's
# reading is weak; every sentence is still checked against the passage it cites).
# `cabildo serve --data data` serves the same over HTTP (docs/api.md).
cabildo ask "¿desde qué edad se puede votar en Chile?" --generator extractive --data data
cabildo status --data data
