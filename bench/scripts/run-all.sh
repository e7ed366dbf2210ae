#!/usr/bin/env bash
# Every workload against a spawned `ivory serve` and a spawned 3-node local cluster, 64 clients,
# 10 s each (hot: until sold out; spread, bulk and channels then read every key back, --verify).
# JSON lines go to $OUT (default /tmp/ivory-bench/results.jsonl), HTML reports next to it. Run from the workspace root after
#   cargo build --release -p ivory -p ivory-bench
set -euo pipefail
OUT_DIR=${OUT_DIR:-/tmp/ivory-bench}
OUT=${OUT:-$OUT_DIR/results.jsonl}
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-10}
SPAWNS=${SPAWNS:-"1 3"}
WORKLOADS=${WORKLOADS:-"spread hot bulk channels query"}
HOT_STOCK=${HOT_STOCK:-50000}
BIN=${BIN:-target/release/ivory-bench}
mkdir -p "$OUT_DIR"
status=0
for n in $SPAWNS; do
  for w in $WORKLOADS; do
    extra=()
    case $w in
      hot) extra=(--stock "$HOT_STOCK") ;;
      query) extra=(--duration "$DURATION") ;;
      *) extra=(--duration "$DURATION" --verify) ;;   # read-back after the clock stops
    esac
    echo "== $w on --spawn $n (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    if ! "$BIN" "$w" --spawn "$n" --clients "$CLIENTS" "${extra[@]}" \
        --label "load=$(cut -d' ' -f1 /proc/loadavg)" \
        --report "$OUT_DIR/$w-spawn$n.html" | tee -a "$OUT"; then
      echo "!! $w on --spawn $n failed" >&2
      status=1
    fi
  done
done
exit $status
