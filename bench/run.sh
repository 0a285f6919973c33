#!/usr/bin/env bash
# The benchmark suite of BENCHMARKS.md, in one command:
#
#   bash bench/run.sh [--quick] [--only fanout,throughput,connect,burst,state,idle,busy,ceiling]
#   bash bench/run.sh --only herd         # only connect's 1,000 sockets at once
#   bash bench/run.sh --only herd-network # the same herds with roles, then keys, from the network
#   bash bench/run.sh --only flood,forged # abuse: one socket's flood, forged keys (the service's
#                                         # ADDRESS_LIMIT at wrangler.toml's limit, as deployed)
#   bash bench/run.sh --only reconnect    # 300 observers reconnecting with and without `resume`
#   bash bench/run.sh --only wake         # a HEARTBEAT waking a hibernated airport, 10,000 objects vs none
#   BENCH_EXTRA=name=DIR bash bench/run.sh --only poll  # 300 pilots polling GET_STATE, against
#                                                       # another build of the service in DIR
#   bash bench/run.sh --only fanout-durable  # fan-out against the floor and the durable floor
#   bash bench/run.sh --only flood-drop   # the flood against a floor that drops unreadable frames
#   bash bench/run.sh --only diagnose     # the floor plus one cost of the service at a time
#   bash bench/run.sh --only connect-object  # connects against the floor doing a connect's work
#   bash bench/run.sh --only herd-floors  # herds against the floor in Rust and floor+object, 10 each
#   bash bench/run.sh --only diagnose-batches  # batch throughput against a floor sending the
#                                              # service's bytes
#
# Builds the Worker if its sources are newer than build/ (scripts/build.sh, the same build a
# deploy ships) and the load generator (bench/loadgen, cargo --release). Serves the Worker and the
# floor with miniflare/workerd on 127.0.0.1 (bench/serve.mjs) pinned to core 0, runs the load
# generator pinned to core 1, and prints the tables; they are also written to
# bench/out/results.md. --quick is a smoke run of about 5 minutes with short windows (the idle
# scenario then uses a 15 s heartbeat); its numbers are not the published ones.
#
# Environment: PORT (8787), FLOOR_PORT (8788), STATS_PORT (8789), NATIVE_PORT (8790),
# BENCH_OUT (bench/out: results.md, logs), SERVER_CPU (0), LOADGEN_CPU (1), BATCH_REPEATS (5, diagnose-batches), BENCH_VARS (extra VAR=value overrides for the service),
# BENCH_NICE (-10 when run as root: the server and the generator get priority over whatever
# else the machine runs, so that other load disturbs the numbers less; 0 to turn off).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false

quick=() only="fanout,throughput,connect,burst,flood,forged,state,idle,busy,ceiling"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --only) only="$2"; shift ;;
    *) echo "usage: bash bench/run.sh [--quick] [--only fanout,throughput,throughput-single,connect,herd,herd-network,burst,flood,forged,state,idle,busy,ceiling,fanout-durable,flood-drop,poll,reconnect,wake,diagnose,diagnose-batches,connect-object,herd-floors]" >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ ",$only," == *",$1,"* ]]; }

PORT=${PORT:-8787} FLOOR_PORT=${FLOOR_PORT:-8788} STATS_PORT=${STATS_PORT:-8789}
NATIVE_PORT=${NATIVE_PORT:-8790} SERVER_CPU=${SERVER_CPU:-0} LOADGEN_CPU=${LOADGEN_CPU:-1}
read -r -a extra_vars <<< "${BENCH_VARS:-}"
nice_level=${BENCH_NICE:-$([ "$(id -u)" = 0 ] && echo -10 || echo 0)}
pin() { local cpu=$1; shift; nice -n "$nice_level" taskset -c "$cpu" "$@"; }

# 1,000+ sockets on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ ! -f build/index_bg.wasm ] || [ ! -f build/index.js ] ||
  [ -n "$(find src protocol/src Cargo.toml Cargo.lock build.rs -newer build/index_bg.wasm -print -quit)" ]; then
  echo "building the Worker (scripts/build.sh)" >&2
  bash scripts/setup.sh >&2
  bash scripts/build.sh >&2
fi
[ -d node_modules/miniflare ] || bash scripts/setup.sh >&2
cargo build --release --quiet -p airport-loadgen >&2
loadgen=$root/target/release/loadgen

out=${BENCH_OUT:-$root/bench/out}
mkdir -p "$out"
results=$out/results.md
: > "$results"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap cleanup EXIT INT TERM

# A JavaScript expression over serve.mjs's info file, `i` (its URLs and workerd pids).
info() { node -p "const i = JSON.parse(require('fs').readFileSync('$out/info.json','utf8')); $1"; }

# Starts bench/serve.mjs on the server core and waits (at most 60 s) for its info file.
serve() {
  rm -f "$out/info.json"
  nice -n "$nice_level" taskset -c "$SERVER_CPU" node bench/serve.mjs --port "$PORT" --floor-port "$FLOOR_PORT" \
    --stats-port "$STATS_PORT" --info "$out/info.json" --max-seconds 3000 "$@" \
    > "$out/serve.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do
    [ -s "$out/info.json" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/serve.log" >&2; exit 1; }
    sleep 0.2
  done
  [ -s "$out/info.json" ] || { echo "serve.mjs did not start" >&2; exit 1; }
  service_pid=$(info i.service.pid)
  floor_pid=$(info i.floor.pid)
}

lg() { pin "$LOADGEN_CPU" "$loadgen" "$@" | tee -a "$results"; }

# BENCH_EXTRA="name=/path/to/build other=/path/to/build" serves other builds of the service
# (e.g. the previous commit's, or a patched copy) beside it in the diagnoses, as further targets.
read -r -a extra_specs <<< "${BENCH_EXTRA:-}"
extra_builds=()
for spec in "${extra_specs[@]}"; do extra_builds+=(--extra "$spec"); done
# serve with the ladder (bench/floor/ladder.mjs's variants and the floor in Rust → Wasm, which
# is built first if its sources changed) and BENCH_EXTRA's builds.
serve_ladder() {
  if [ ! -f bench/floor-wasm/build/index_bg.wasm ] ||
    [ -n "$(find bench/floor-wasm/src bench/floor-wasm/Cargo.toml Cargo.lock -newer bench/floor-wasm/build/index_bg.wasm -print -quit)" ]; then
    echo "building the floor in Rust (bench/floor-wasm/build.sh)" >&2
    bash bench/floor-wasm/build.sh >&2
  fi
  serve --ladder "${extra_builds[@]}" "${extra_vars[@]}"
}
# A scenario against ours, the floor and variants of the ladder (bench/floor/ladder.mjs, and
# floor-wasm; each served on --floor-port + 10 + its index) in a fresh runtime, under a heading:
#   against_ladder TITLE "NAME=VARIANT ..." LOADGEN-ARGS...
against_ladder() {
  local title=$1 pair name variant index pid variants=()
  read -r -a pairs <<< "$2"
  shift 2
  serve_ladder
  extra_targets
  for pair in "${pairs[@]}"; do
    name=${pair%%=*} variant=${pair#*=}
    index=$(info "i.ladder.findIndex((l) => l.name === '$variant')")
    pid=$(info "i.ladder[$index].pid")
    variants+=(--target "$name=ws://127.0.0.1:$((FLOOR_PORT + 10 + index))@$pid")
  done
  echo -e "\n### $title\n" | tee -a "$results"
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --target "floor=ws://127.0.0.1:$FLOOR_PORT@$floor_pid" \
    "${variants[@]}" "${extras[@]}" "$@" "${quick[@]}"
  cleanup
}
# After serve: the --target arguments of the extra builds.
extra_targets() {
  extras=()
  for i in "${!extra_specs[@]}"; do
    local name=${extra_specs[$i]%%=*} pid
    pid=$(info "i.extra[$i].pid")
    extras+=(--target "$name=ws://127.0.0.1:$((FLOOR_PORT + 20 + i))@$pid")
  done
}

{
  echo "## Run of $(date -u '+%Y-%m-%d %H:%M UTC') ${quick[*]:-}"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "- workerd $(node_modules/.bin/workerd --version 2>/dev/null | head -1), miniflare $(node -p "require('./node_modules/miniflare/package.json').version"), node $(node --version)"
  echo "- build: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), build/index_bg.wasm $(stat -c %s build/index_bg.wasm) bytes"
  echo "- server pinned to core $SERVER_CPU, load generator to core $LOADGEN_CPU, both at nice $nice_level"
  echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
} | tee -a "$results"

standard=(fanout throughput throughput-single connect herd burst flood forged)
scenarios=()
for s in "${standard[@]}"; do wants "$s" && scenarios+=("$s"); done
if [ ${#scenarios[@]} -gt 0 ]; then
  # BENCH_EXTRA's builds, if any, run as further targets beside the service and the floor.
  serve "${extra_builds[@]}" "${extra_vars[@]}"
  extra_targets
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --target "floor=ws://127.0.0.1:$FLOOR_PORT@$floor_pid" "${extras[@]}" \
    --stats "http://127.0.0.1:$STATS_PORT/stats" \
    --only "$(IFS=,; echo "${scenarios[*]}")" "${quick[@]}"
  cleanup
fi

if wants herd-network; then
  # The herds of 1,000 sockets at once against three services: ours (own keys, static roles),
  # ours+vatsim (own keys, roles from the network) and ours+network (KEY_SOURCE=network: the
  # keys only in the running service's tables), alternating with the floor, so that the role
  # look-up and the network key source each show as a step. The stand-in status service runs on
  # the generator's core: the real one is not on the service's CPU. Storage on tmpfs: the first
  # herd creates 1,000 people's look-up objects, and on this machine's disk creating each one's
  # SQLite file took about 20 ms, one at a time, so that most of those connects timed out.
  TMPDIR=$([ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}") \
    serve --network --status-cpu "$LOADGEN_CPU" "${extra_vars[@]}"
  network_targets=()
  for i in 0 1 2; do
    network_targets+=(--target "$(info "i.network[$i].name")=ws://127.0.0.1:$((FLOOR_PORT + 30 + i))@$(info "i.network[$i].pid")")
  done
  echo -e "\n### 1,000 sockets at once with roles, then keys, from the network\n" | tee -a "$results"
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --target "floor=ws://127.0.0.1:$FLOOR_PORT@$floor_pid" "${network_targets[@]}" \
    --only herd "${quick[@]}" | tee "$out/herd-network.md"
  node bench/herd-ratios.mjs "$out/herd-network.md" | tee -a "$results"
  lookups=$(node -e "fetch('$(info i.status.count)').then((r) => r.text()).then(console.log)")
  echo -e "\nRole look-ups the status service answered: $lookups" | tee -a "$results"
  cleanup
fi

if wants state; then
  # A fresh runtime, so that the directory lists only this scenario's airports: the service only
  # (the floor has no /state), its structured log events counted per airport.
  serve "${extra_vars[@]}"
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --stats "http://127.0.0.1:$STATS_PORT/stats" --only state "${quick[@]}"
  cleanup
fi

if wants idle; then
  # A fresh runtime with a tail worker that sees every invocation of the service.
  if [ ${#quick[@]} -gt 0 ]; then
    serve --tail HEARTBEAT_INTERVAL_MS=15000 IDLE_TIMEOUT_MS=25000 "${extra_vars[@]}"
    echo "(quick: HEARTBEAT_INTERVAL_MS=15000, IDLE_TIMEOUT_MS=25000)" | tee -a "$results"
  else
    serve --tail "${extra_vars[@]}"
  fi
  lg idle --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --stats "http://127.0.0.1:$STATS_PORT/stats" --seconds 185 --sockets 20 "${quick[@]}"
  cleanup
fi

if wants busy; then
  # The cost model's busy airport-hour: a fresh runtime with the tail worker, 1 vatSys controller
  # toggling a stopbar every 30 s and 19 pilots, each sending what CLIENTS.md says it sends.
  serve --tail "${extra_vars[@]}"
  lg idle --busy --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --stats "http://127.0.0.1:$STATS_PORT/stats" --seconds 185 --sockets 20 "${quick[@]}"
  cleanup
fi

if wants ceiling; then
  # The generator's own ceiling: the same scenarios against a native fan-out server on the
  # server core, with no rate limit, far past what workerd reaches.
  nice -n "$nice_level" taskset -c "$SERVER_CPU" "$loadgen" native-server --port "$NATIVE_PORT" --max-seconds 1800 \
    > "$out/native.log" 2>&1 &
  server_pid=$!
  sleep 0.5
  echo -e "\n### Load generator ceiling (native fan-out server on core $SERVER_CPU)\n" | tee -a "$results"
  fanout_seconds=10
  [ ${#quick[@]} -gt 0 ] && fanout_seconds=3
  lg bench --target "native=ws://127.0.0.1:$NATIVE_PORT@$server_pid" --only fanout,throughput \
    --fanout-n 1000 --fanout-seconds "$fanout_seconds" --tp-max-single 12800 --tp-max-multi 1280 --repeats 1 \
    "${quick[@]}"
  cleanup
fi

if wants poll; then
  # Snapshots with 300 pilots: CPU per connect and per GET_STATE, against BENCH_EXTRA's builds
  # (e.g. one without the snapshot cache). The floor serves no snapshots, so it is not a target.
  serve "${extra_builds[@]}" "${extra_vars[@]}"
  extra_targets
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" "${extras[@]}" --only poll "${quick[@]}"
  cleanup
fi

if wants reconnect; then
  # A reconnect storm with and without `resume`: the service only (the floor keeps no state).
  serve "${extra_vars[@]}"
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" --stats "http://127.0.0.1:$STATS_PORT/stats" \
    --only reconnect "${quick[@]}"
  cleanup
fi

if wants wake; then
  # A heartbeat waking a hibernated airport of 10,000 objects and an empty one: the service and
  # BENCH_EXTRA's builds (the floor keeps no state). --stats: constructions, reads of rows. The
  # server's heartbeats (alarms that would wake the objects) and idle closes are pushed past the
  # run: its sockets stay silent from their last populating frame to their wake-up.
  serve "${extra_builds[@]}" HEARTBEAT_INTERVAL_MS=600000 IDLE_TIMEOUT_MS=900000 "${extra_vars[@]}"
  extra_targets
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" "${extras[@]}" \
    --stats "http://127.0.0.1:$STATS_PORT/stats" --only wake "${quick[@]}"
  cleanup
fi

if wants diagnose; then
  # Where a gap between the service and the floor comes from: bench/floor/ladder.mjs adds one of
  # the service's costs at a time to the floor (key look-up in D1, a SQLite write per frame, an
  # attachment write per frame, all three), and BENCH_EXTRA's builds.
  serve_ladder
  ladder=()
  for i in 0 1 2 3 4; do
    name=$(info "i.ladder[$i].name")
    pid=$(info "i.ladder[$i].pid")
    ladder+=(--target "$name=ws://127.0.0.1:$((FLOOR_PORT + 10 + i))@$pid")
  done
  extra_targets
  ladder+=("${extras[@]}")
  echo -e "\n### Diagnosis: the floor plus one cost of the service at a time\n" | tee -a "$results"
  fanout_seconds=10
  [ ${#quick[@]} -gt 0 ] && fanout_seconds=3
  lg bench --target "ours=ws://127.0.0.1:$PORT@$service_pid" \
    --target "floor=ws://127.0.0.1:$FLOOR_PORT@$floor_pid" "${ladder[@]}" \
    --only fanout,throughput-single,herd --fanout-n 500 --fanout-seconds "$fanout_seconds" --step-seconds 4 "${quick[@]}"
  cleanup
fi

if wants fanout-durable; then
  # Fan-out against both floors: the floor, and the durable floor (ladder.mjs SQL=1), which
  # writes each frame to its SQLite storage before forwarding it: the honest limit of a service
  # that stores every change before it broadcasts it (PROTOCOL §5).
  against_ladder "Fan-out against the floor and the durable floor" "durable-floor=floor+sql" --only fanout
fi

if wants flood-drop; then
  # The flood against the floor and a floor that closes a socket at its first unreadable frame
  # and drops the rest in JavaScript (ladder.mjs DROP=1): what a flood costs a bystander when
  # the airport does the least possible with it.
  against_ladder "Flood against the floor and a floor that drops" "floor+drop=floor+drop" --only flood
fi

if wants connect-object; then
  # Connects against the floor and the floor doing in its object what the contract asks of a
  # connect (ladder.mjs floor+object: the key's D1 query, SQLite, an attachment, the alarm),
  # with 20 hibernated airports per case (5 in `connect`), whose single connects move by 2x.
  against_ladder "Connects against the floor, the floor in Rust and the floor doing a connect's work in its object" \
    "floor-wasm=floor-wasm floor+object=floor+object" --stats "http://127.0.0.1:$STATS_PORT/stats" --only connect --cold 20
fi

if wants herd-floors; then
  # The herds of 1,000 sockets at once against three floors, 10 herds each: the floor, the floor
  # in Rust → Wasm (what the toolchain itself costs) and floor+object (the contract's work).
  against_ladder "Herds against the floor, the floor in Rust and the floor doing a connect's work" \
    "floor-wasm=floor-wasm floor+object=floor+object" --only herd --repeats 10 \
    | tee "$out/herd-floors.md"
  node bench/herd-ratios.mjs "$out/herd-floors.md" | tee -a "$results"
fi

if wants diagnose-batches; then
  # Whether the MULTI_STATE_UPDATE gap is the service's work or the bytes the contract makes it
  # send: the floor, and the floor padding each forwarded frame to the length of the service's
  # broadcast of it (ladder.mjs BYTES=1), against the service; BATCH_REPEATS (5) searches each,
  # alternating, because single searches of batches move by up to 2x here. BENCH_EXTRA's builds
  # are searched too.
  against_ladder "Diagnosis: batches against a floor that sends the service's bytes" "floor+bytes=floor+bytes" \
    --only throughput-multi --repeats "${BATCH_REPEATS:-5}"
fi

{
  echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- build at the end: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), build/index_bg.wasm $(stat -c %s build/index_bg.wasm) bytes (a rebuild during the run would show here)"
} | tee -a "$results"
