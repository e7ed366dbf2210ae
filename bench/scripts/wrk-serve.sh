#!/usr/bin/env bash
# A second opinion beside ivory-bench: wrk (C, Lua) sends unique reserves to `ivory serve` and
# reports latency percentiles. Needs wrk, curl and python3 (apt-get install wrk).
#   bench/scripts/wrk-serve.sh target/release/ivory -t2 -c64 -d10s
# PRODUCTS (default 10000) products x 4 sites are loaded with 1,000,000 each first.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
BIN=$1; shift
D=$(mktemp -d); PORT=${PORT:-18080}
IVORY_CLIENT_ID=bench IVORY_CLIENT_SECRET=bench-secret-0123456789 "$BIN" serve --listen 127.0.0.1:$PORT --data "$D" > "$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done
TOKEN=$(curl -s -X POST http://127.0.0.1:$PORT/token -H 'Content-Type: application/json' \
  -d '{"client_id":"bench","client_secret":"bench-secret-0123456789","context":"bench"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
export TOKEN
python3 "$here/load-stock.py" http://127.0.0.1:$PORT "$TOKEN"
wrk -s "$here/wrk-reserve.lua" "$@" http://127.0.0.1:$PORT/
