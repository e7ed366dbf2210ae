#!/usr/bin/env bash
# Grow a local cluster from 3 to 5 nodes and back to 3 while ivory-bench runs spread reserves against it,
# and report how long each rebalance took and what the bench's latency did meanwhile.
#
#   bench/scripts/grow-shrink.sh [SHARDS] [RATE]     (defaults: 64 shards, 1000 reserves/s open loop)
#
# Needs target/release/ivory and target/release/ivory-bench (cargo build --release -p ivory -p ivory-bench).
# Writes everything (logs, bench JSON lines and HTML reports) to a temp directory it prints.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
shards="${1:-64}" rate="${2:-1000}"
ivory="$root/target/release/ivory" bench="$root/target/release/ivory-bench"
dir="$(mktemp -d /tmp/ivory-grow-shrink.XXXXXX)"
base=$((20000 + RANDOM % 20000))
export IVORY_BIN="$ivory" IVORY_SHARDS="$shards"
export IVORY_CLIENT_ID=ivory-local IVORY_CLIENT_SECRET=local-secret-change-me-0123456789
trap '"$root/cluster/local.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT

"$root/cluster/local.sh" start 3 "$base" "$dir"
"$ivory" cluster status --endpoint "127.0.0.1:$base" --wait >/dev/null
urls=(--url "http://127.0.0.1:$base" --url "http://127.0.0.1:$((base + 1))" --url "http://127.0.0.1:$((base + 2))")
run_bench() { # label seconds
  "$bench" spread "${urls[@]}" --client-id "$IVORY_CLIENT_ID" --client-secret "$IVORY_CLIENT_SECRET" \
    --clients 32 --rate "$rate" --duration "$2" --label "$1" --report "$dir/$1.html" >"$dir/$1.json" 2>"$dir/$1.err"
}
summary() { # label
  python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(sys.argv[2], "ok/s", r["ok_rps"], "latency_us", json.dumps(r["latency_us"]), "errors", r["errors"], json.dumps(r["errors_by_kind"]))' "$dir/$1.json" "$1"
}

run_bench baseline 30
summary baseline

run_bench grow 50 & bench_pid=$!
sleep 5
t0=$(date +%s.%N)
"$root/cluster/local.sh" add "$dir" >"$dir/add4.out"
t1=$(date +%s.%N)
"$root/cluster/local.sh" add "$dir" >"$dir/add5.out"
t2=$(date +%s.%N)
"$root/cluster/local.sh" remove "$dir" 5 >"$dir/remove5.out"
t3=$(date +%s.%N)
"$root/cluster/local.sh" remove "$dir" 4 >"$dir/remove4.out"
t4=$(date +%s.%N)
wait "$bench_pid" || true
summary grow
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" <<'EOF'
import sys
t = [float(x) for x in sys.argv[1:]]
for name, a, b in [("add node 4", 0, 1), ("add node 5", 1, 2), ("remove node 5", 2, 3), ("remove node 4", 3, 4)]:
    print(f"{name}: {t[b] - t[a]:.1f} s (command to settled)")
print(f"3 -> 5 -> 3 in {t[4] - t[0]:.1f} s")
EOF
grep -h "replica moved" "$dir"/node*.log | sed 's/.*ms=\([0-9]*\).*/\1/' | sort -n | \
  awk '{a[NR]=$1} END {if (NR) printf "moves: %d, per move p50 %d ms, max %d ms\n", NR, a[int(NR/2)+1], a[NR]}'
echo "reports and logs: $dir (grow.html has latency per second)"
