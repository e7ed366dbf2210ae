#!/usr/bin/env bash
# CPU per request of each process under load: `bench/scripts/process-cpu.sh 1` (ivory serve) or
# `bench/scripts/process-cpu.sh 3` (3 nodes, clients spread over them), both spawned by ivory-bench;
# or URLS="http://127.0.0.1:18180" bench/scripts/process-cpu.sh for nodes already running (say
# `cluster/local.sh start 3 18180 DIR`, with clients on node 1 only; every `ivory serve` and
# `ivory node` process of the machine is then measured). WORKLOAD=bulk or hot for another workload,
# BENCH_ARGS for more `ivory-bench` options (BENCH_ARGS="--stock 1000000" keeps hot running through
# the window). Run from the workspace root after `cargo build --release -p ivory -p ivory-bench`.
# Reads /proc/PID/stat of the nodes and of the generator over a window in the middle of the run
# (past the stock set-up), and prints each one's share of a core and its µs of CPU per request
# (per item for bulk), using the run's rate. The machine's busy share says whether the cores ran out.
set -euo pipefail
NODES=${1:-1}
WORKLOAD=${WORKLOAD:-spread}
DURATION=${DURATION:-16}
WINDOW=${WINDOW:-6}
BIN_DIR=${BIN_DIR:-target/release}
OUT=$(mktemp -d /tmp/ivory-process-cpu-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
if [ -n "${URLS:-}" ]; then
  TARGET=()
  for url in $URLS; do TARGET+=(--url "$url"); done
  NODES=$(echo "$URLS" | wc -w)
else
  TARGET=(--spawn "$NODES" --ivory-bin "$BIN_DIR/ivory")
fi
"$BIN_DIR/ivory-bench" "$WORKLOAD" "${TARGET[@]}" --clients 64 --duration "$DURATION" \
  ${BENCH_ARGS:-} >"$OUT/run.json" 2>"$OUT/run.err" &
BENCH=$!
for _ in $(seq 240); do grep -q "\[setup\] loaded" "$OUT/run.err" 2>/dev/null && break; sleep 0.5; done
sleep 3
# The nodes (ivory serve, or ivory node --id N): those the generator spawned, or every one here.
if [ -n "${URLS:-}" ]; then
  PIDS="$(pgrep -f "ivory (serve|node) " | tr '\n' ' ')$BENCH"
else
  PIDS="$(pgrep -P "$BENCH" -f "ivory (serve|node)" | tr '\n' ' ')$BENCH"
fi
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A before
for p in $PIDS; do before[$p]=$(ticks "$p"); done
machine_before=$(head -1 /proc/stat)
sleep "$WINDOW"
machine_after=$(head -1 /proc/stat)
declare -A used
for p in $PIDS; do
  name=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{ if ($2 == "node") print "node " $4; else if ($2 == "serve") print "ivory serve"; else print "ivory-bench (generator)" }')
  used[$name]=$(($(ticks "$p") - ${before[$p]}))
done
wait "$BENCH" || true
HZ=$(getconf CLK_TCK)
for name in "${!used[@]}"; do echo "$name ${used[$name]}"; done | sort | python3 -c '
import json, sys
run = json.load(open(sys.argv[1])); hz = int(sys.argv[2]); window = float(sys.argv[3])
before = [int(x) for x in sys.argv[4].split()[1:]]; after = [int(x) for x in sys.argv[5].split()[1:]]
delta = [b - a for a, b in zip(before, after)]
rate = run["ok_items_per_s"]
unit = "item" if run.get("items_per_request", 1) > 1 else "request"
print("%s, %s node(s) taking requests: %.0f ok %ss/s, p99 %.1f ms" % (run["workload"], sys.argv[6], rate, unit, run["latency_us"]["p99"] / 1000))
total = 0.0
for line in sys.stdin:
    name, ticks = line.rsplit(" ", 1)
    core = int(ticks) / hz / window
    total += core
    print("  %-24s %5.0f%% of a core  %6.1f us per %s" % (name, 100 * core, core * 1e6 / rate, unit))
print("  %-24s %5.0f%% of a core  %6.1f us per %s" % ("all of them", 100 * total, total * 1e6 / rate, unit))
print("  machine busy %.0f%% of %d cores" % (100 * (sum(delta) - delta[3] - delta[4]) / sum(delta), run.get("cores", 0)))
' "$OUT/run.json" "$HZ" "$WINDOW" "$machine_before" "$machine_after" "$NODES"
