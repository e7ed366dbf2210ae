#!/usr/bin/env bash
# Ivory beside PostgreSQL and Redis on this machine, in one run of one harness: spread, hot and
# bulk against `ivory serve` (--spawn 1), a 3-node local cluster (--spawn 3), PostgreSQL (durable
# defaults) and Redis (appendonly, appendfsync always). Run from the workspace root after
#   cargo build --release -p ivory -p ivory-bench
# Installs postgresql and redis-server with apt-get when missing (as root), starts both on
# 127.0.0.1 with their data in a temporary directory, and stops them by PID on exit.
# JSON lines go to $OUT (default /tmp/ivory-bench/side-by-side.jsonl); a table goes to stdout.
set -euo pipefail
OUT_DIR=${OUT_DIR:-/tmp/ivory-bench}
OUT=${OUT:-$OUT_DIR/side-by-side.jsonl}
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-10}
HOT_STOCK=${HOT_STOCK:-50000}
WORKLOADS=${WORKLOADS:-"spread hot bulk"}
TARGETS=${TARGETS:-"ivory1 ivory3 postgres redis"}
BIN=${BIN:-target/release/ivory-bench}
mkdir -p "$OUT_DIR"
: >"$OUT"
WORK=$(mktemp -d /tmp/ivory-side-XXXXXX)
chmod 755 "$WORK"
PG_PID="" REDIS_PID=""
cleanup() {
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  if [ -n "$PG_PID" ]; then kill -INT "$PG_PID" 2>/dev/null || true; sleep 1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
want() { case " $TARGETS " in *" $1 "*) return 0;; esac; return 1; }

if want postgres || want redis; then
  need=()
  want postgres && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && need+=(postgresql)
  want redis && ! command -v redis-server >/dev/null && need+=(redis-server)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
if want postgres; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_PORT=$(free_port)
  mkdir -p "$WORK/pg" && chown postgres: "$WORK/pg"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$WORK/pg -c max_connections=200" start >/dev/null
  PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
fi
if want redis; then
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes \
    --appendfsync always --save "" --daemonize no >"$WORK/redis/log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

for w in $WORKLOADS; do
  case $w in hot) extra=(--stock "$HOT_STOCK") ;; *) extra=(--duration "$DURATION") ;; esac
  for t in $TARGETS; do
    case $t in
      ivory1) target=(--spawn 1) ;;
      ivory3) target=(--spawn 3) ;;
      postgres) target=(--peer postgres "postgres://postgres@127.0.0.1:$PG_PORT/postgres") ;;
      redis) target=(--peer redis "redis://127.0.0.1:$REDIS_PORT") ;;
    esac
    echo "== $w on $t (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$BIN" "$w" "${target[@]}" --clients "$CLIENTS" "${extra[@]}" --label "$t load=$(cut -d' ' -f1 /proc/loadavg)" \
      | tee -a "$OUT" >/dev/null || echo "!! $w on $t failed" >&2
  done
done

python3 - "$OUT" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| workload | target | ok items/s | x PostgreSQL | p50 ms | p99 ms | server CPU % | µs CPU/item | load |")
print("|---|---|---|---|---|---|---|---|---|")
pg = {r["workload"]: r["ok_items_per_s"] for r in rows if r.get("target") == "postgres"}
for r in rows:
    label = r.get("label", "").split()
    name = label[0] if label else r.get("target")
    ips = r.get("ok_items_per_s", 0)
    base = pg.get(r["workload"])
    ratio = f"{ips / base:.2f}" if base else ""
    cpu = r.get("server_cpu_pct")
    per = f"{cpu * 1e4 / ips:.0f}" if cpu and ips else ""
    lat = r.get("latency_us", {})
    load = label[1].split("=")[1] if len(label) > 1 else ""
    print(f"| {r['workload']} | {name} | {ips:,.0f} | {ratio} | {lat.get('p50', 0) / 1000:.1f} | "
          f"{lat.get('p99', 0) / 1000:.1f} | {cpu if cpu is not None else ''} | {per} | {load} |")
EOF
