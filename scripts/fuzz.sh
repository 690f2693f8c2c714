#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each, growing the corpus in
# fuzz/corpus/<target> and then minimising it (cmin) so what is committed stays small. Prints one
# Markdown row per target for bench/results/fuzz.md; exits 1 if any target found a crash (its
# input is left in fuzz/artifacts/<target>/: make it a regression test).
#
# The machine has only a stable toolchain: cargo-fuzz passes nightly `-Z` flags, which stable
# rustc accepts with RUSTC_BOOTSTRAP=1. Sanitizer: none by default, because our crates forbid
# unsafe code and what we hunt is panics and broken invariants (asserted in each target);
# FUZZ_SANITIZER=address builds with ASAN (the stable toolchain ships its runtime).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo fuzz build -s "$sanitizer"

failed=0
echo "| target | seconds | runs | corpus files (after cmin) | crashes |"
echo "|---|---|---|---|---|"
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    status=0
    cargo fuzz run -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1 || true)
    crashes=0
    if [ "$status" -ne 0 ]; then
        crashes=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
        failed=1
        tail -30 "$log" >&2
    else
        cargo fuzz cmin -s "$sanitizer" "$target" "corpus/$target" >/dev/null 2>&1
    fi
    files=$(find "corpus/$target" -type f | wc -l)
    echo "| \`$target\` | $seconds | ${runs:-?} | $files | $crashes |"
    rm -f "$log"
done
exit "$failed"
