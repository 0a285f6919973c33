#!/usr/bin/env bash
# Runs the service locally with `wrangler dev` on http://127.0.0.1:8787 (PORT to change it),
# with the local D1 database migrated and seeded with the demo keys of the README.
# Any variable of wrangler.toml's [vars] set in the environment overrides it (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false

CI=true wrangler d1 migrations apply DB --local
wrangler d1 execute DB --local --file seeds/dev.sql

vars=()
for name in HEARTBEAT_INTERVAL_MS IDLE_TIMEOUT_MS OFFLINE_GRACE_MS MAX_SOCKETS_PER_KEY \
  MAX_SOCKETS_PER_AIRPORT ROLE_SOURCE VATSIM_STATUS_URL CONTROLLER_SCOPE VATSIM_CACHE_MS \
  VATSIM_TIMEOUT_MS VATSIM_RECHECK_MS; do
  if [ -n "${!name:-}" ]; then vars+=(--var "$name:${!name}"); fi
done
exec wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "${vars[@]}"
