#!/usr/bin/env bash
# The whole test suite: formatting, clippy (native and Wasm), the native unit and property
# tests of the protocol core, the Worker build, and the miniflare integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
cargo test
bash scripts/build.sh
node --test --test-concurrency=1 tests/integration/*.test.mjs
