#!/usr/bin/env bash
# Installs what building and testing need, skipping whatever is already in place:
# the wasm32 Rust target, worker-build, wasm-bindgen-cli at the exact version in Cargo.lock,
# the npm devDependencies (wrangler, miniflare, esbuild, binaryen's wasm-opt, puppeteer-core,
# Node 22) and Chromium for the dashboard's browser tests (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7

for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null)" != "$WORKER_BUILD_VERSION" ]; then
  cargo install --locked worker-build --version "=$WORKER_BUILD_VERSION"
fi

# wasm-bindgen-cli must match the wasm-bindgen crate exactly (pinned with = in Cargo.toml).
# Not --locked: its lockfile names a webpki-roots release the registry no longer serves.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  cargo install wasm-bindgen-cli --version "=$bindgen_version"
fi

# npm ci only when the lockfile changed since the last install.
if ! [ node_modules/.installed-lock -nt package-lock.json ]; then
  npm ci --no-audit --no-fund
  touch node_modules/.installed-lock
fi

# The browser tests drive Debian's Chromium (puppeteer-core downloads no browser).
if ! command -v chromium >/dev/null; then
  sudo=()
  if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
