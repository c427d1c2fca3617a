#!/usr/bin/env bash
# What survives the young generation under load, by allocation site: the
# gateway runs with promoted-probe.mjs preloaded and --trace-gc-nvp; after a
# warm-up, the probe samples for SECS of wrk load (a new URL per request).
#   flock /tmp/rxgate-bench.lock bench/memory/promoted.sh [seconds] [node flags…]
# V8 prints its traces with stdio, block-buffered into a file: stdbuf -oL keeps them in order.
# CONFIG (default full.yaml), ROOT, WARM, OUT (profile path), PROMOTED_INTERVAL.
# Prints requests, scavenges' promoted bytes per request, mark-compacts, and
# promoted-report.mjs's table (sampled bytes per request by site).
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SECS=${1:-8}; shift || true
TMP=$(mktemp -d)
OUT=${OUT:-$TMP/promoted.heapprofile}
. "$ROOT/bench/memory/load.sh"
# PROFILE=0: no sampling profiler (its weak handles lengthen the pauses), only the GC trace.
PROBE_IMPORT=(); [ "${PROFILE:-1}" != 0 ] && PROBE_IMPORT=(--import "$ROOT/bench/memory/promoted-probe.mjs")
upstream
BENCH_UPSTREAM=http://127.0.0.1:$UP BENCH_JWT_SECRET=$SECRET NODE_ENV=production PROMOTED_OUT=$OUT PROMOTED_GC=${PROMOTED_GC:-} PROMOTED_SNAPSHOT=${PROMOTED_SNAPSHOT:-} \
  stdbuf -oL node --trace-gc-nvp "$@" ${PROBE_IMPORT[@]+"${PROBE_IMPORT[@]}"} "$ROOT/bin/rxgate.mjs" \
  --config "${CONFIG:-$ROOT/bench/configs/full.yaml}" --port $GW >"$TMP/gw.log" 2>&1 & GWPID=$!
loaded
run warm "${WARM:-4}" >/dev/null
[ "${PROFILE:-1}" != 0 ] && { kill -USR2 $GWPID; sleep 1; }
L0=$(wc -l <"$TMP/gw.log")
# PROMOTED_SNAPSHOT: the second snapshot is taken under load, halfway through.
[ -n "${PROMOTED_SNAPSHOT:-}" ] && { (sleep $((SECS / 2)); kill -USR2 $GWPID) & }
T0=$(awk '{print $14+$15}' /proc/$GWPID/stat)
run main "$SECS" >"$TMP/wrk.txt"
T1=$(awk '{print $14+$15}' /proc/$GWPID/stat)
L1=$(wc -l <"$TMP/gw.log")
[ "${PROFILE:-1}" != 0 ] && [ -z "${PROMOTED_SNAPSHOT:-}" ] && kill -USR2 $GWPID
for _ in $(seq 100); do [ "${PROFILE:-1}" = 0 ] || grep -q "PROMOTED written" "$TMP/gw.log" && break; sleep 0.2; done
sed -n "$((L0 + 1)),${L1}p" "$TMP/gw.log" >"$TMP/gc.log"
REQ=$(awk '/requests in/{print $1}' "$TMP/wrk.txt")
echo "flags: $* ; config ${CONFIG:-full.yaml} ; requests $REQ ; CPU µs/response $(echo "($T1-$T0)*10000/$REQ" | bc -l | cut -c1-6)"
grep -E "Requests/sec|99%" "$TMP/wrk.txt"
awk -v req="$REQ" '/gc=s /{n++; for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]=="promoted") p+=kv[2]; if(kv[1]=="allocated") a+=kv[2]}}
  /gc=mc /{m++; for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]=="pause" && kv[2]>mx) mx=kv[2]}}
  END{printf "scavenges %d, promoted %.0f B/request, allocated %.0f B/request, mark-compacts %d (longest %.1f ms)\n", n, p/req, a/req, m, mx}' "$TMP/gc.log"
[ -n "${KEEP:-}" ] && cp "$TMP/gw.log" "$KEEP"
[ "${PROFILE:-1}" = 0 ] || [ -n "${PROMOTED_GC:-}${PROMOTED_SNAPSHOT:-}" ] || node "$ROOT/bench/memory/promoted-report.mjs" "$OUT" "$REQ"
[ -n "${PROMOTED_GC:-}" ] && node "$ROOT/bench/memory/dead-report.mjs" "$TMP/gw.log" "$REQ"
true
