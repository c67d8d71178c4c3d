#!/usr/bin/env bash
# The test command: model files, formatting, lints, and every test of the workspace.
# Tests over ../shared/corpus and ../shared/eval skip with a message when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-models.sh
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
# A minute of fuzzing for each ingest format parser and the PII scanner (docs/security.md).
scripts/fuzz.sh 60
