#!/usr/bin/env bash
# The test command: model files, formatting, lints, every test of the workspace, and a short
# fuzzing run of every ingest parser and the PII scanner.
# Tests over ../shared/corpus and ../shared/eval skip with a message when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-models.sh
# The official OpenAI client libraries (Python and npm) the conversation tests drive Cabildo
# with; with CABILDO_REQUIRE_CLIENTS=1 a missing one fails those tests instead of skipping.
scripts/setup-clients.sh
export CABILDO_REQUIRE_CLIENTS=1
# Headless Chromium and its WebDriver for the widget and console tests; with
# CABILDO_REQUIRE_BROWSER=1 a missing browser fails those tests instead of skipping.
scripts/setup-browser.sh
export CABILDO_REQUIRE_BROWSER=1
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
# A minute of fuzzing for each ingest format parser and the PII scanner (docs/security.md).
scripts/fuzz.sh 60
