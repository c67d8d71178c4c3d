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
# llama.cpp's OpenAI-compatible server, the real model server the remote writer is tested
# against (tests/llamacpp.rs); compiled by pip the first time (~10 minutes), then cached.
scripts/setup-llamacpp.sh
export CABILDO_REQUIRE_LLAMACPP=1
# Servers the tests start are stopped, and their folders removed, when this script ends.
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done' EXIT
# A PostgreSQL server on loopback for the registry's PostgreSQL backend (scripts/postgres.sh:
# Debian's package, installed if missing; a throwaway cluster on a free port). With
# CABILDO_REQUIRE_POSTGRES=1 those tests fail instead of skipping when it is absent.
if [ -z "${CABILDO_TEST_POSTGRES:-}" ]; then
    pg_dir=$(mktemp -d)
    cleanup+=("scripts/postgres.sh stop '$pg_dir/pg' || true; rm -rf '$pg_dir'")
    CABILDO_TEST_POSTGRES=$(scripts/postgres.sh start "$pg_dir/pg")
    export CABILDO_TEST_POSTGRES
    echo "PostgreSQL server for the tests: $CABILDO_TEST_POSTGRES"
fi
export CABILDO_REQUIRE_POSTGRES=1
# A Qdrant server on loopback for the tests of the server backend (the binary built from the
# official source in ../shared/bin, see its README), on free ports, stopped when this script
# ends; without it those tests skip.
if [ -x ../shared/bin/qdrant ] && [ -z "${QDRANT_URL:-}" ]; then
    qdrant_dir=$(mktemp -d)
    read -r qdrant_http qdrant_grpc < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
    # Run from its own folder: the server writes a marker file into its working directory.
    qdrant_bin=$(realpath ../shared/bin/qdrant)
    (cd "$qdrant_dir" && QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__SERVICE__HTTP_PORT=$qdrant_http \
        QDRANT__SERVICE__GRPC_PORT=$qdrant_grpc QDRANT__STORAGE__STORAGE_PATH="$qdrant_dir/storage" \
        QDRANT__STORAGE__SNAPSHOTS_PATH="$qdrant_dir/snapshots" QDRANT__TELEMETRY_DISABLED=true \
        exec "$qdrant_bin" > "$qdrant_dir/log" 2>&1) &
    qdrant_pid=$!
    cleanup+=("kill $qdrant_pid 2>/dev/null; wait $qdrant_pid 2>/dev/null; rm -rf '$qdrant_dir'")
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$qdrant_http/readyz" > /dev/null && break
        sleep 0.2
    done
    if ! curl -sf "http://127.0.0.1:$qdrant_http/readyz" > /dev/null; then
        cat "$qdrant_dir/log"
        echo "the Qdrant server in ../shared/bin did not start" >&2
        exit 1
    fi
    export QDRANT_URL="http://127.0.0.1:$qdrant_grpc"
    echo "Qdrant server for the tests: $QDRANT_URL"
fi
# deploy/: the Helm chart linted and rendered with Helm's own engine, the manifests and the
# compose file checked (no container daemon or cluster is needed; images are not built).
scripts/check-deploy.sh
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
