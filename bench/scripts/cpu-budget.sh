#!/usr/bin/env bash
# Server CPU per stage under the spread workload, from a DWARF call-graph profile of the spawned
# node(s): `bench/scripts/cpu-budget.sh 1` (ivory serve) or `bench/scripts/cpu-budget.sh 3`.
# WORKLOAD=bulk (or hot) profiles another workload; BENCH_ARGS adds ivory-bench options (hot sells
# out in seconds: BENCH_ARGS="--stock 400000" keeps it running through the profile).
# Run from the workspace root after `cargo build --release -p ivory -p ivory-bench`; needs perf
# (Debian: linux-perf) and root or perf_event_paranoid <= 1. Prints the stage shares and the
# run's server CPU per reserve; multiply the two for microseconds per stage.
set -euo pipefail
NODES=${1:-1}
DURATION=${DURATION:-22}
BIN_DIR=${BIN_DIR:-target/release}
OUT=$(mktemp -d /tmp/ivory-cpu-XXXXXX)
"$BIN_DIR/ivory-bench" "${WORKLOAD:-spread}" --spawn "$NODES" --clients 64 --duration "$DURATION" \
  --ivory-bin "$BIN_DIR/ivory" ${BENCH_ARGS:-} >"$OUT/run.json" 2>"$OUT/run.err" &
BENCH=$!
# Past set-up (stock loading) and into the measured window.
for _ in $(seq 120); do grep -q "\[setup\] loaded" "$OUT/run.err" 2>/dev/null && break; sleep 0.5; done
sleep 2
PIDS=$(pgrep -f "$BIN_DIR/ivory (serve|node)" | paste -sd,)
perf record -F 300 -m 4096 --call-graph dwarf,16384 -p "$PIDS" -o "$OUT/perf.data" -- sleep 12 2>/dev/null
wait "$BENCH" || true
perf script -i "$OUT/perf.data" -F comm,tid,ip,sym 2>/dev/null >"$OUT/perf.txt"
python3 "$(dirname "$0")/cpu_budget.py" "$OUT/perf.txt"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('ok reserves/s %.0f, server CPU %d%%, %.0f us CPU per reserve' % (d['ok_rps'], d['server_cpu_pct'], d['server_cpu_pct']*1e4/d['ok_rps']))" "$OUT/run.json"
echo "profile and run in $OUT" >&2
