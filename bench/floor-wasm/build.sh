#!/usr/bin/env bash
# Builds the floor in Rust → Wasm (bench/floor-wasm/build: index.js, index_bg.wasm) as
# scripts/build.sh builds the Worker: worker-build with the local tools, whole-program LTO.
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD/../..
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export CARGO_PROFILE_RELEASE_LTO=true
worker-build --release
