#!/usr/bin/env bash
# The whole test suite: formatting, clippy (native and Wasm), the native tests of the protocol
# core (unit, property, simulated-time room tests) and the fuzz corpora replayed, the Worker
# build, and the miniflare integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p airport-realtime --lib --target wasm32-unknown-unknown -- -D warnings
cargo test --workspace
bash scripts/build.sh
node --test --test-concurrency=1 tests/integration/*.test.mjs
