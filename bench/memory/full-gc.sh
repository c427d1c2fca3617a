#!/usr/bin/env bash
# The full-miss target under load with V8's GC trace: why each mark-compact
# happens and how long it takes, for a set of node flags.
#   flock /tmp/rxgate-bench.lock bench/memory/full-gc.sh [seconds] [node flags…]
# e.g. bench/memory/full-gc.sh 8 --max-semi-space-size=16
# Prints the mark-compacts' lines of --trace-gc, a count of them by reason,
# wrk's summary and the gateway's CPU µs per response.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SECS=${1:-8}; shift || true
TMP=$(mktemp -d)
. "$ROOT/bench/memory/load.sh"
upstream
BENCH_UPSTREAM=http://127.0.0.1:$UP BENCH_JWT_SECRET=$SECRET NODE_ENV=production \
  node --trace-gc "$@" "$ROOT/bin/rxgate.mjs" --config "${CONFIG:-$ROOT/bench/configs/full.yaml}" --port $GW >"$TMP/gw.log" 2>&1 & GWPID=$!
loaded
run warm "${WARM:-4}" >/dev/null
L0=$(wc -l <"$TMP/gw.log")
T0=$(awk '{print $14+$15}' /proc/$GWPID/stat)
run main "$SECS" >"$TMP/wrk.txt"
T1=$(awk '{print $14+$15}' /proc/$GWPID/stat)
tail -n +$((L0 + 1)) "$TMP/gw.log" >"$TMP/gc.log"
REQ=$(awk '/requests in/{print $1}' "$TMP/wrk.txt")
echo "flags: $* ; requests $REQ ; CPU µs/response $(echo "($T1-$T0)*10000/$REQ" | bc -l | cut -c1-6)"
grep -E "Latency|99%|Requests/sec" "$TMP/wrk.txt"
[ -n "${KEEP:-}" ] && cp "$TMP/gc.log" "$KEEP"
echo "scavenges: $(grep -c Scavenge "$TMP/gc.log" || true)"
grep -E "Mark-Compact|Mark-sweep|Mark-Sweep" "$TMP/gc.log" | sed 's/^\[[0-9:]*\] *//' || true
echo "mark-compacts by reason:"; grep -E "Mark-Compact|Mark-Sweep|Mark-sweep" "$TMP/gc.log" | sed -E 's/.*[0-9.]+ ms: *//; s/^[^;]*; *//'  | sort | uniq -c || true
