#!/usr/bin/env bash
# The whole test suite: formatting, clippy (native and Wasm), the native tests of the protocol
# core (unit, property, simulated-time room tests) and the fuzz corpora replayed, the Worker
# build with a deploy dry run, the miniflare integration tests, and the dashboard's tests in
# headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p airport-realtime -p floor-wasm --lib --target wasm32-unknown-unknown -- -D warnings
cargo test --workspace
# The deploy as far as it goes offline: wrangler checks wrangler.toml and bundles the Worker.
# Its [build] is scripts/build.sh, so this is also the one build of build/ the integration tests
# run. Then the bundle as it would be uploaded must start in workerd and answer GET /health.
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
wrangler deploy --dry-run --outdir "$bundle"
node scripts/check-bundle.mjs "$bundle"
node --test --test-concurrency=1 tests/integration/*.test.mjs
node --test --test-concurrency=1 tests/browser/*.test.mjs
