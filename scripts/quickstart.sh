#!/usr/bin/env bash
# Installs the model files, builds the `cabildo` binary, and runs the main job on the embedded
# default (tantivy + SQLite + the in-process Qdrant engine, no other service): ingests the
# Chilean Constitution from ../shared/corpus and the bundled CC0 Peruvian Constitution into
# ./data, embedding every article with e5-small, then searches and answers a question in a
# citizen's words. Settings: config/cabildo.toml (`cabildo config show`).
#
# Only the binary is built, in the `quickstart` profile (optimised, no debug info; see
# Cargo.toml): the README gives its first-run time and disk use. Embedding is the slow part on
# a CPU: these two documents take about two minutes. The whole ../shared/corpus takes ~40
# minutes that way, or seconds lexical-only: `cabildo ingest ../shared/corpus --no-dense --data DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-models.sh
cargo build --locked --profile quickstart -p cabildo-cli
cabildo() { "${CARGO_TARGET_DIR:-target}/quickstart/cabildo" "$@"; }
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
