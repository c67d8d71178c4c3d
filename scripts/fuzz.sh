#!/usr/bin/env bash
# Fuzzes every ingest format parser and the PII scanner for SECONDS each (default 60).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Stable Rust: cargo-fuzz with --sanitizer none (libFuzzer's coverage guidance without ASan,
# which needs nightly). Installs cargo-fuzz from crates.io when missing. Seeds each target
# with small files of its format from ../shared/corpus when that is present; the corpus each
# run grows is kept under ~/.cache/cabildo/fuzz-corpus, so later runs (CI's) start from it.
# A crash leaves its input under fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(pii parse_markdown parse_rst parse_pdf parse_html parse_xml parse_json parse_csv)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
# Kept outside the clone (like CI's main target folder) so repeated runs rebuild little.
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/cabildo/fuzz-target}"
extension() {
    case "$1" in
        parse_markdown) echo md ;; parse_rst) echo rst ;; parse_pdf) echo pdf ;;
        parse_html) echo html ;; parse_xml) echo xml ;; parse_json) echo json ;;
        parse_csv) echo csv ;; pii) echo md ;;
    esac
}
corpora="${FUZZ_CORPUS_DIR:-$HOME/.cache/cabildo/fuzz-corpus}"
for target in "${targets[@]}"; do
    corpus="$corpora/$target"
    mkdir -p "$corpus"
    if [ -d ../shared/corpus ] && [ -z "$(ls -A "$corpus")" ]; then
        # awk, not head: head exiting early would fail the pipeline under pipefail.
        # PDFs are rarely small: take those up to libFuzzer's -max_len.
        limit=64k; [ "$target" = parse_pdf ] && limit=256k
        find ../shared/corpus -type f -name "*.$(extension "$target")" -size "-$limit" | awk 'NR <= 40' |
            while read -r f; do cp "$f" "$corpus/"; done
    fi
done
(cd fuzz && cargo fuzz build --sanitizer none --target-dir "$target_dir")
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    (cd fuzz && cargo fuzz run --sanitizer none --target-dir "$target_dir" "$target" "$corpora/$target" -- \
        -max_total_time="$seconds" -max_len=262144 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E "^(stat::|Done|==|INFO: Seed|.*(ERROR|panicked|SUMMARY|deadly|crash))" || true)
    if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz target $target found a crash: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
