#!/usr/bin/env bash
# A local Ivory cluster on 127.0.0.1 for development, demos and benchmarks.
#
#   cluster/local.sh start N BASEPORT DATADIR   start N nodes on ports BASEPORT..BASEPORT+N-1, wait for /healthz
#   cluster/local.sh add DATADIR                add one node (next id, next port), wait until rebalanced
#   cluster/local.sh remove DATADIR ID          drain and remove node ID, wait, then stop its process
#   cluster/local.sh status DATADIR             `ivory cluster status` against the first live node
#   cluster/local.sh stop DATADIR               stop the nodes started with that DATADIR
#
# Logs and pid files go to DATADIR/nodeI.log and DATADIR/nodeI.pid. The binary is IVORY_BIN, else
# target/release/ivory (built with `cargo build --release -p ivory` if missing). Every node shares
# the API client IVORY_CLIENT_ID / IVORY_CLIENT_SECRET (defaults below), so a token from any node
# is good on all of them. IVORY_SHARDS (default 16) sets the shard count. The nodes and the `ivory cluster`
# commands share the cluster secret IVORY_CLUSTER_SECRET, else the one kept in DATADIR/cluster-secret (made
# on first start, mode 0600): `export IVORY_CLUSTER_SECRET="$(cat DATADIR/cluster-secret)"` for your own.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# Exports IVORY_CLUSTER_SECRET: the caller's, else DATADIR/cluster-secret (created 0600 if missing).
cluster_secret() {
  local dir="$1"
  if [ -n "${IVORY_CLUSTER_SECRET:-}" ]; then export IVORY_CLUSTER_SECRET; return; fi
  if [ ! -f "$dir/cluster-secret" ]; then
    mkdir -p "$dir"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/cluster-secret")
  fi
  IVORY_CLUSTER_SECRET="$(cat "$dir/cluster-secret")"
  export IVORY_CLUSTER_SECRET
}

bin() {
  local b="${IVORY_BIN:-$root/target/release/ivory}"
  if [ ! -x "$b" ]; then
    echo "building $b ..." >&2
    (cd "$root" && cargo build --release -p ivory >&2)
  fi
  echo "$b"
}

start() {
  local n="$1" base="$2" dir="$3"
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "N must be a positive number" >&2; exit 2; }
  [[ "$base" =~ ^[0-9]+$ ]] || { echo "BASEPORT must be a number" >&2; exit 2; }
  mkdir -p "$dir"
  local b members="" i
  b="$(bin)"
  cluster_secret "$dir"
  export IVORY_CLIENT_ID="${IVORY_CLIENT_ID:-ivory-local}"
  export IVORY_CLIENT_SECRET="${IVORY_CLIENT_SECRET:-local-secret-change-me-0123456789}"
  for ((i = 1; i <= n; i++)); do
    members+="${members:+,}$i=127.0.0.1:$((base + i - 1))"
  done
  local replicas=$(( n < 3 ? n : 3 ))
  echo "$base" >"$dir/baseport"
  for ((i = 1; i <= n; i++)); do
    if [ -f "$dir/node$i.pid" ] && kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
      echo "node $i is already running (pid $(cat "$dir/node$i.pid"))" >&2; exit 1
    fi
    nohup "$b" node --id "$i" --listen "127.0.0.1:$((base + i - 1))" --data "$dir/node$i" \
      --initial-cluster "$members" --replicas "$replicas" --shards "${IVORY_SHARDS:-16}" \
      >>"$dir/node$i.log" 2>&1 &
    echo $! >"$dir/node$i.pid"
  done
  for ((i = 1; i <= n; i++)); do
    local url="http://127.0.0.1:$((base + i - 1))/healthz" waited=0
    until curl -sf -o /dev/null "$url"; do
      if ! kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
        echo "node $i exited; last lines of $dir/node$i.log:" >&2; tail -20 "$dir/node$i.log" >&2; exit 1
      fi
      sleep 0.2; waited=$((waited + 1))
      if [ "$waited" -ge 300 ]; then echo "node $i not healthy after 60 s ($url)" >&2; exit 1; fi
    done
  done
  echo "ivory: $n nodes healthy on 127.0.0.1:$base..$((base + n - 1)); client_id=$IVORY_CLIENT_ID; data in $dir"
}

wait_healthy() {
  local i="$1" port="$2" dir="$3" waited=0
  until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do
    if ! kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
      echo "node $i exited; last lines of $dir/node$i.log:" >&2; tail -20 "$dir/node$i.log" >&2; exit 1
    fi
    sleep 0.2; waited=$((waited + 1))
    if [ "$waited" -ge 300 ]; then echo "node $i not healthy after 60 s" >&2; exit 1; fi
  done
}

# The address of a running node other than $2 (if given).
live_endpoint() {
  local dir="$1" except="${2:-}" base f i
  base="$(cat "$dir/baseport")"
  shopt -s nullglob
  for f in "$dir"/node*.pid; do
    i="${f##*/node}"; i="${i%.pid}"
    [ "$i" = "$except" ] && continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "127.0.0.1:$((base + i - 1))"; return; fi
  done
  echo "no running node in $dir" >&2; exit 1
}

add() {
  local dir="$1" b base id=0 f i port endpoint
  [ -f "$dir/baseport" ] || { echo "$dir has no cluster started by this script" >&2; exit 1; }
  b="$(bin)"; base="$(cat "$dir/baseport")"
  cluster_secret "$dir"
  export IVORY_CLIENT_ID="${IVORY_CLIENT_ID:-ivory-local}"
  export IVORY_CLIENT_SECRET="${IVORY_CLIENT_SECRET:-local-secret-change-me-0123456789}"
  shopt -s nullglob
  for f in "$dir"/node*; do
    i="${f##*/node}"; i="${i%%.*}"
    [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -gt "$id" ] && id="$i"
  done
  id=$((id + 1)); port=$((base + id - 1)); endpoint="$(live_endpoint "$dir")"
  "$b" cluster add-node --endpoint "$endpoint" --id "$id" --address "127.0.0.1:$port"
  nohup "$b" node --id "$id" --listen "127.0.0.1:$port" --data "$dir/node$id" --join "$endpoint" \
    >>"$dir/node$id.log" 2>&1 &
  echo $! >"$dir/node$id.pid"
  wait_healthy "$id" "$port" "$dir"
  "$b" cluster status --endpoint "$endpoint" --wait
  echo "ivory: node $id added on 127.0.0.1:$port"
}

remove() {
  local dir="$1" id="$2" b endpoint pid
  b="$(bin)"; endpoint="$(live_endpoint "$dir" "$id")"
  cluster_secret "$dir"
  "$b" cluster remove-node --endpoint "$endpoint" --id "$id"
  if [ -f "$dir/node$id.pid" ]; then
    pid="$(cat "$dir/node$id.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/node$id.pid"
  fi
  echo "ivory: node $id removed and stopped (its data is in $dir/node$id)"
}

stop() {
  local dir="$1" f pid
  shopt -s nullglob
  for f in "$dir"/node*.pid; do
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  echo "ivory: stopped the nodes of $dir"
}

case "${1:-}" in
  start) [ $# -eq 4 ] || usage; start "$2" "$3" "$4" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  add) [ $# -eq 2 ] || usage; add "$2" ;;
  remove) [ $# -eq 3 ] || usage; remove "$2" "$3" ;;
  status) [ $# -eq 2 ] || usage; cluster_secret "$2"; "$(bin)" cluster status --endpoint "$(live_endpoint "$2")" ;;
  *) usage ;;
esac
