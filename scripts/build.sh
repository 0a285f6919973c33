#!/usr/bin/env bash
# Builds the Worker (build/index.js + build/index_bg.wasm) with worker-build, using only local
# tools: worker-build would otherwise download wasm-bindgen, wasm-opt and esbuild. Then the
# dashboard's static assets (dashboard/dist, scripts/build-dashboard.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
# Whole-program LTO for the Wasm only (not in Cargo.toml's profile: cargo-fuzz uses it too).
export CARGO_PROFILE_RELEASE_LTO=true
worker-build --release
node scripts/build-dashboard.mjs
