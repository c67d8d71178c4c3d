#!/usr/bin/env bash
# Crash loop, in the manner of Qdrant's crasher: write to a data folder and kill -9 the
# writer at random moments, again and again, restarting each time. After every kill,
# `cabildo status --check` must find the folder consistent: every norm the registry records
# is in the lexical index (and the vector store, with --dense) with exactly its passages,
# and the audit chain verifies. At the end one uninterrupted run must finish the job with
# every file recorded: nothing lost.
#
#   scripts/crashloop.sh [--kills N] [--max-delay S] [--dense] [--mode ingest|upload] CORPUS
#
# --mode ingest (default): `cabildo ingest CORPUS` is the writer, killed N times (runs that
#   finish before their kill do not count; the folder is then emptied so that the next kill
#   again lands mid-ingest).
# --mode upload: `cabildo serve` is the writer; CORPUS's files are uploaded through
#   POST /v1/documents in batches while the server is killed and restarted.
# Prints one line per kill and a summary; exits 1 at the first inconsistency.
# CABILDO_BIN chooses the binary (default: the release build, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

kills=30
max_delay=3
dense=false
mode=ingest
while [ $# -gt 1 ]; do
    case "$1" in
        --kills) kills=$2; shift 2 ;;
        --max-delay) max_delay=$2; shift 2 ;;
        --dense) dense=true; shift ;;
        --mode) mode=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
corpus=${1:?usage: scripts/crashloop.sh [--kills N] [--max-delay S] [--dense] [--mode ingest|upload] CORPUS}
bin=${CABILDO_BIN:-${CARGO_TARGET_DIR:-target}/release/cabildo}
if [ ! -x "$bin" ]; then
    cargo build --release -p cabildo-cli
fi
work=$(mktemp -d)
data=$work/data
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
dense_flag=()
$dense || dense_flag=(--no-dense)
export CABILDO__DATA__MODELS=${CABILDO__DATA__MODELS:-$PWD/models}

random_delay() { python3 -c "import random; print(round(random.uniform(0.05, $max_delay), 2))"; }

check() {
    if ! "$bin" status --check --data "$data" > "$work/check" 2>&1; then
        echo "INCONSISTENT after kill $1:" >&2
        cat "$work/check" >&2
        exit 1
    fi
}

killed=0
finished=0
started=$(date +%s)
files=$(find "$corpus" -type f ! -name '.*' | wc -l)

if [ "$mode" = ingest ]; then
    i=0
    while [ "$killed" -lt "$kills" ]; do
        i=$((i + 1))
        "$bin" ingest "$corpus" --data "$data" "${dense_flag[@]}" --json > "$work/report" 2> "$work/log" &
        pid=$!
        delay=$(random_delay)
        sleep "$delay"
        if kill -9 "$pid" 2> /dev/null; then
            killed=$((killed + 1))
            wait "$pid" 2> /dev/null || true
            what="killed after ${delay}s"
        else
            wait "$pid" || { cat "$work/log" >&2; exit 1; }
            finished=$((finished + 1))
            what="finished before ${delay}s"
        fi
        check "$i"
        echo "run $i: $what; $(cat "$work/check")"
        if [ "$what" != "${what#finished}" ]; then
            rm -rf "$data" # start over, so that the next kill lands mid-ingest again
        fi
    done
    "$bin" ingest "$corpus" --data "$data" "${dense_flag[@]}" --json > "$work/report" 2> "$work/log"
else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$data"
    key=$("$bin" clients add crashloop --role admin --data "$data")
    serve() {
        "$bin" serve --data "$data" --addr "127.0.0.1:$port" --generator extractive \
            > "$work/serve.log" 2>&1 &
        server=$!
        for _ in $(seq 1 300); do
            curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && return 0
            sleep 0.1
        done
        cat "$work/serve.log" >&2
        exit 1
    }
    mapfile -t all < <(find "$corpus" -type f ! -name '.*' | sort)
    upload_all() {
        # Batches of 10 files, one request each, until the server goes away.
        local n=0 args=()
        for f in "${all[@]}"; do
            args+=(-F "file=@$f")
            n=$((n + 1))
            if [ $((n % 10)) -eq 0 ] || [ "$n" -eq "${#all[@]}" ]; then
                curl -s -o /dev/null -H "Authorization: Bearer $key" "${args[@]}" \
                    "http://127.0.0.1:$port/v1/documents" || return 0
                args=()
            fi
        done
    }
    for i in $(seq 1 "$kills"); do
        serve
        upload_all &
        uploader=$!
        delay=$(random_delay)
        sleep "$delay"
        kill -9 "$server" 2> /dev/null || true
        wait "$server" 2> /dev/null || true
        kill "$uploader" 2> /dev/null || true
        wait "$uploader" 2> /dev/null || true
        killed=$((killed + 1))
        check "$i"
        echo "kill $i: server killed after ${delay}s; $(cat "$work/check")"
    done
    # Uploaded files are kept under DATA/uploads; one uninterrupted ingest of them is the
    # end state the server would reach.
    "$bin" ingest "$data/uploads" --data "$data" "${dense_flag[@]}" --json > "$work/report" 2> "$work/log"
    files=$(find "$data/uploads" -type f | wc -l)
fi
check final
python3 - "$work/report" "$files" "$killed" "$finished" "$(( $(date +%s) - started ))" "$(cat "$work/check")" <<'EOF'
import json, sys
report, files, killed, finished, seconds, check = sys.argv[1:]
s = json.load(open(report))
recorded = s["norms"] + s["unchanged"] + s["failures"]
print(f"{killed} kills, {finished} runs that finished first, {seconds} s; final run: "
      f"{s['files']} files ({s['unchanged']} unchanged, {s['norms']} written, {s['failures']} failed) "
      f"of {files} under the corpus; {check}")
if s["files"] != recorded:
    print(f"LOST: {s['files']} files but {recorded} accounted for", file=sys.stderr)
    sys.exit(1)
EOF
