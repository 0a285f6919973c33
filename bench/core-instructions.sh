#!/usr/bin/env bash
# Instructions per packet of the pure core, natively, counted by valgrind (callgrind): unlike
# criterion's timings they do not move with the load of a shared machine, so two builds can be
# compared to the percent. Each case of protocol/benches/core.rs runs twice, 0 and COUNT times after the
# same setup; the difference divided by COUNT is one packet's cost.
#
#   bash bench/core-instructions.sh            # every case
#   COUNT=50 bash bench/core-instructions.sh   # fewer repetitions (default 200)
#
# Needs valgrind. The build is `cargo bench`'s (the release profile: opt-level "s", LTO), the
# same code the Worker runs, compiled for x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-200}
command -v valgrind >/dev/null || { echo "core-instructions: valgrind is needed" >&2; exit 1; }
binary=$(cargo bench -p airport-protocol --bench core --no-run 2>&1 |
  sed -n 's/.*Executable benches\/core.rs (\(.*\))$/\1/p' | tail -1)
[ -x "$binary" ] || { echo "core-instructions: protocol/benches/core.rs did not build" >&2; exit 1; }

# Instructions of one run of a case, repeated $2 times.
instructions() {
  local log
  log=$(mktemp)
  CORE_BENCH_CASE=$1 CORE_BENCH_COUNT=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$binary" > /dev/null 2> "$log"
  grep -o 'Collected : [0-9]*' "$log" | grep -o '[0-9]*$'
  rm -f "$log"
}

echo "| packet | instructions per packet |"
echo "|---|---|"
for name in $(CORE_BENCH_CASE=list CORE_BENCH_COUNT=0 "$binary"); do
  base=$(instructions "$name" 0)
  total=$(instructions "$name" "$count")
  echo "| \`$name\` | $(( (total - base) / count )) |"
done
