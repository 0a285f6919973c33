#!/usr/bin/env bash
# Builds the Worker (build/index.js + build/index_bg.wasm) with worker-build, using only local
# tools: worker-build would otherwise download wasm-bindgen, wasm-opt and esbuild; its module is
# then bundled behind our entry (src/entry.mjs). Then the dashboard's static assets
# (dashboard/dist, scripts/build-dashboard.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
# Whole-program LTO for the Wasm only (not in Cargo.toml's profile: cargo-fuzz uses it too).
export CARGO_PROFILE_RELEASE_LTO=true
worker-build --release
# The entry (src/entry.mjs) in front of worker-build's module, bundled into build/index.js.
mv build/index.js build/worker.js
"$ESBUILD_BIN" src/entry.mjs --bundle --format=esm --minify --log-level=warning \
  --external:./index_bg.wasm --external:'cloudflare:*' --outfile=build/index.js
rm build/worker.js
node scripts/build-dashboard.mjs
