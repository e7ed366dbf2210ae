#!/usr/bin/env bash
# A node's data directory after 20 s of spread with a snapshot every 100 commands (the nemesis's
# rate): what the WAL, the snapshot files and sled take. bench/README.md, "Disk".
# Usage: bench/scripts/disk-usage.sh [IVORY_BIN] (after cargo build --release -p ivory -p ivory-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/ivory}
PORT=${PORT:-18097}
D=$(mktemp -d /tmp/ivory-disk.XXXX)
IVORY_TEST_SNAPSHOT_COMMANDS=100 IVORY_CLIENT_ID=bench IVORY_CLIENT_SECRET=bench-secret-0123456789 \
  "$BIN" serve --listen 127.0.0.1:$PORT --data "$D/data" --shards 4 > "$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/health/ping >/dev/null && break; sleep 0.2; done
target/release/ivory-bench spread --url http://127.0.0.1:$PORT --client-id bench \
  --client-secret bench-secret-0123456789 --clients 16 --duration 20 --products 2000 | grep -o '"ok":[0-9]*' | head -1
du -sh "$D"/data/sled/* | sort -h
du -sh "$D/data"
