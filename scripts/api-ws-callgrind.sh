#!/bin/sh
# Instructions per publication of the server API's publish path over `GET /api/ws`, one subscriber per
# channel (the S5 shape), counted by callgrind: the server runs under valgrind, scripts/api-ws-load.mjs
# warms it up, zeroes the counters, publishes COUNT times and dumps them. Compare two builds by this
# figure (run each twice: runs of one build differ by a few %).
# Usage: scripts/api-ws-callgrind.sh [subscribers=2000] [count=4000] [rate=300] [warm=10000]
set -e
N=${1:-2000} K=${2:-4000} R=${3:-300} W=${4:-10000}
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
PORT=$(node -e "const s=require('net').createServer().listen(0,()=>{console.log(s.address().port);s.close()})")
KEY=callgrind-key-0123456789abcdef
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" node --single-threaded packages/server/dist/cli/main.js \
  serve --port "$PORT" --host 127.0.0.1 --api-key "$KEY" --workers 1 --no-demos --log-level warn >"$OUT/server.log" 2>&1 &
VP=$!
i=0
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
  i=$((i + 1)); [ $i -gt 300 ] && { echo "the server did not start: $OUT/server.log"; kill $VP; exit 1; }
  sleep 0.2
done
CGPID=$VP node scripts/api-ws-load.mjs "$PORT" "$KEY" "$N" "$K" "$R" "$W"
kill -TERM $VP; wait $VP || true
TOTAL=$(grep -h -E '^(summary|totals):' "$OUT"/cg.out.* | head -1 | awk '{print $2}')
echo "$TOTAL instructions for $K publications: $((TOTAL / K)) per publication"
rm -rf "$OUT"
