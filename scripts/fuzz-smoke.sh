#!/usr/bin/env bash
# Fuzzing smoke test: runs each cargo-fuzz target for a short while (20 s by default) on its
# committed seed corpus. New corpus entries go to a temporary directory, so nothing in the tree
# changes; a crash is saved under fuzz/artifacts/<target>/ (ignored by git) and fails the script.
# Skipped, with exit status 0, when `cargo +nightly fuzz` is not available. See FUZZING.md.
#
#   FUZZ_SMOKE_SECONDS=60 bash scripts/fuzz-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SMOKE_SECONDS:-20}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: skipped: \`cargo +nightly fuzz\` is not available" \
        "(rustup toolchain install nightly && cargo install cargo-fuzz)"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# target:max_len (the longest seed must fit)
for entry in decode_packet:16384 state_machine:32768; do
    target="${entry%%:*}"
    max_len="${entry##*:}"
    mkdir -p "$work/$target"
    echo "fuzz-smoke: $target for ${seconds}s"
    # No sanitizer: the code under test is safe Rust, and ASan would cost most of the runs.
    cargo +nightly fuzz run --sanitizer none "$target" "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=30 -print_final_stats=1 \
        2>"$work/$target.log" || {
        tail -n 60 "$work/$target.log" >&2
        echo "fuzz-smoke: $target FAILED (see the artifact named above)" >&2
        exit 1
    }
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done ' "$work/$target.log" || true
done
echo "fuzz-smoke: ok"
