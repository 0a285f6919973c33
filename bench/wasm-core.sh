#!/usr/bin/env bash
# The protocol core's per-packet time in Wasm at each opt-level, side by side (BENCHMARKS.md,
# "Wasm size"): builds testkit/examples/wasm_core.rs with the release profile and each level,
# runs wasm-opt as the Worker's build does, and times the cases in node (V8, as workerd).
#
#   bash bench/wasm-core.sh [LEVEL ...]      # default: s z
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
levels=("${@:-s}")
[ $# -gt 0 ] || levels=(s z)
out=target/wasm-core
mkdir -p "$out"
builds=()
for level in "${levels[@]}"; do
  CARGO_PROFILE_RELEASE_OPT_LEVEL=$level cargo build --quiet --release --target wasm32-unknown-unknown \
    -p airport-testkit --example wasm_core --target-dir "$out/$level"
  wasm-opt -Os --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals "$out/$level/wasm32-unknown-unknown/release/examples/wasm_core.wasm" \
    -o "$out/$level.wasm"
  builds+=("opt-level=$level=$out/$level.wasm")
done
node bench/wasm-core.mjs "${builds[@]}" --rounds "${ROUNDS:-7}"
