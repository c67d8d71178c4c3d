#!/usr/bin/env bash
# The test command: model files, formatting, lints, every test of the workspace, a short
# crash loop, and a short fuzzing run of every ingest parser and the PII scanner.
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
# A short crash loop (docs/reliability.md): ingest killed with SIGKILL at random moments five
# times, the data folder checked for consistency after every kill.
if [ -d ../shared/corpus ]; then
    cargo build --locked -p cabildo-cli
    CABILDO_BIN="${CARGO_TARGET_DIR:-target}/debug/cabildo" \
        scripts/crashloop.sh --kills 5 --max-delay 4 ../shared/corpus
else
    echo "crash loop skipped: ../shared/corpus not found"
fi
# A minute of fuzzing for each ingest format parser and the PII scanner (docs/security.md).
scripts/fuzz.sh 60
