#!/usr/bin/env bash
# Interleaved end-to-end A/B of gateways under the bench's load (wrk, 50
# connections; a new URL per request unless the target says `fixed`): all
# targets start at once on one upstream, then each round loads each target in
# turn (WARM s unmeasured, then SECS s measured). Per round and target: CPU µs
# per response (/proc/<pid>/stat: all threads, the kernel's share of it, the
# main thread alone; the rest is V8's GC and compiler threads), mark-compacts in the window and why
# (--trace-gc), upstream connections the target opened in the window, req/s.
#   flock /tmp/rxgate-bench.lock bench/memory/ab.sh ROUNDS SECS NAME=SPEC…
# SPEC: `cfg:<rxgate config>[:fixed]` (node bin/rxgate.mjs, so `npm run build`
# first; `tree:<dir>:cfg:…` runs that checkout's bin/rxgate.mjs and dist, built there: an A/B of two
# trees in one run) or `minimal[:fixed]` (bench/minimal-forwarder.ts, the floor), then
# node flags for that target alone, each after a `+` (`…full.yaml+--max-semi-space-size=4`).
# NODE_FLAGS: extra node flags for every target; STRACE=1: `strace -c -f` over
# each window instead (syscalls per response; slows the target, so no CPU). RENICE: see below.
# POOLPROBE=1: every target preloads bench/memory/pool-probe.mjs, and a line per window gives undici's
# Pool per response: clients walked past per search, searches that queued, clients it added, sockets
# connected and closed (after the upstream's FIN or not), the largest pool, disconnect reasons.
# e.g. bench/memory/ab.sh 3 8 full=cfg:bench/configs/full.yaml floor=minimal
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
ROUNDS=$1; SECS=$2; shift 2
TMP=$(mktemp -d)
. "$ROOT/bench/memory/load.sh"
upstream
# NVP=1: --trace-gc-nvp instead, and V8 bytes allocated and promoted, GC ms per response in place of the reasons.
GCFLAG=--trace-gc; [ "${NVP:-0}" = 1 ] && GCFLAG=--trace-gc-nvp
NAMES=(); PIDS=(); PORTS=(); FIXED=()
# KEEP=<dir>: the targets' logs (GC traces) are copied there at the end, and each window's slice as it ends.
# The processes are stopped first: a failed copy must not leave them running (they hold the bench lock's fd).
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; kill $UPPID 2>/dev/null || true; [ -z "${KEEP:-}" ] || cp "$TMP"/*.log "$KEEP"/ || true; rm -rf "$TMP"; }
trap stop_all EXIT
[ -z "${KEEP:-}" ] || mkdir -p "$KEEP"
port=$GW
for arg in "$@"; do
  name=${arg%%=*}; spec=${arg#*=}; port=$((port + 1))
  flags=(); [[ $spec == *+* ]] && { IFS=+ read -r -a flags <<<"${spec#*+}"; spec=${spec%%+*}; }
  fixed=0; [[ $spec == *:fixed ]] && { fixed=1; spec=${spec%:fixed}; }
  tree=$ROOT; [[ $spec == tree:* ]] && { spec=${spec#tree:}; tree=${spec%%:*}; spec=${spec#*:}; }
  if [[ $spec == minimal ]]; then
    cmd=(--import "$ROOT/bin/loader/register.mjs" "$ROOT/bench/minimal-forwarder.ts" --port $port --upstream http://127.0.0.1:$UP)
  else
    cfg=${spec#cfg:}; [[ $cfg == /* ]] || cfg=$ROOT/$cfg
    cmd=("$tree/bin/rxgate.mjs" --config "$cfg" --port $port)
  fi
  [ "${POOLPROBE:-0}" = 1 ] && flags+=("--import=$ROOT/bench/memory/pool-probe.mjs")
  # shellcheck disable=SC2086
  POOL_PROBE_DIR=$TMP BENCH_UPSTREAM=http://127.0.0.1:$UP BENCH_JWT_SECRET=$SECRET NODE_ENV=production \
    stdbuf -oL node $GCFLAG ${NODE_FLAGS:-} ${flags[@]+"${flags[@]}"} "${cmd[@]}" >"$TMP/$name.log" 2>&1 &
  NAMES+=("$name"); PIDS+=($!); PORTS+=($port); FIXED+=($fixed)
done
GWPID=${PIDS[0]}; GW=${PORTS[0]}
# RENICE="name=-10 …": that target's threads (V8's GC workers included) at that nice value, a diagnostic of
# how much of a pause is the thread waiting for a core on a shared machine rather than the collector's work.
for spec in ${RENICE:-}; do
  for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "${spec%%=*}" ] && sleep 1 && for t in /proc/${PIDS[$i]}/task/*; do renice -n "${spec#*=}" -p "${t##*/}" >/dev/null; done; done
done
loaded
trap stop_all EXIT
for port in "${PORTS[@]}"; do
  for _ in $(seq 100); do curl -s -o /dev/null -H "authorization: Bearer $TOKEN" http://127.0.0.1:$port/bench?r=probe && break; sleep 0.2; done
done
# One URL for a `fixed` target, through a script that still builds each request as the bench's does.
printf 'request = function() return wrk.format(nil, os.getenv("P")) end\n' >"$TMP/f.lua"
load() { # port fixed tag seconds
  local p="/bench?r=$3-" script=$TMP/v.lua; [ "$2" = 1 ] && { p=/bench?r=hit; script=$TMP/f.lua; }
  P=$p wrk -t1 -c50 -d${4}s --latency -s "$script" -H "authorization: Bearer $TOKEN" http://127.0.0.1:$1/
}
conns() { ss -tnpH state established "( dport = :$UP )" 2>/dev/null | grep "pid=$1," | awk '{print $3}' | sort; }
printf '%-5s %-10s %8s %7s %8s %7s %7s %5s %s\n' round target requests req/s 'µs/resp' 'of sys' 'main' conns 'mark-compacts (ms; reason)'
for round in $(seq "$ROUNDS"); do
  for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]}; pid=${PIDS[$i]}; port=${PORTS[$i]}; fixed=${FIXED[$i]}
    load $port $fixed "w$round$name$RANDOM" "${WARM:-2}" >/dev/null
    L0=$(wc -l <"$TMP/$name.log"); conns $pid >"$TMP/c0"
    [ "${POOLPROBE:-0}" = 1 ] && { sleep 0.3; cp "$TMP/pool-$pid.json" "$TMP/p0.json"; }
    if [ "${STRACE:-0}" = 1 ]; then
      strace -c -f -p $pid -o "$TMP/strace.txt" & SPID=$!; sleep 0.5
      load $port $fixed "m$round$name$RANDOM" "$SECS" >"$TMP/wrk.txt"
      kill -INT $SPID; wait $SPID 2>/dev/null || true
    else
      read -r U0 S0 < <(awk '{print $14, $15}' /proc/$pid/stat); M0=$(awk '{print $14+$15}' /proc/$pid/task/$pid/stat)
      load $port $fixed "m$round$name$RANDOM" "$SECS" >"$TMP/wrk.txt"
      read -r U1 S1 < <(awk '{print $14, $15}' /proc/$pid/stat); M1=$(awk '{print $14+$15}' /proc/$pid/task/$pid/stat)
    fi
    [ "${POOLPROBE:-0}" = 1 ] && { sleep 0.3; cp "$TMP/pool-$pid.json" "$TMP/p1.json"; }
    conns $pid >"$TMP/c1"; RSS=$(awk '/VmRSS/{printf "%d", $2/1024}' /proc/$pid/status)
    # KEEP: each measured window's slice of the target's log as well (<name>-<round>.log), for bench/memory/gc-phases.mjs.
    [ -n "${KEEP:-}" ] && tail -n +$((L0 + 1)) "$TMP/$name.log" >"$KEEP/$name-$round.log"
    REQ=$(awk '/requests in/{print $1}' "$TMP/wrk.txt"); RPS=$(awk '/Requests\/sec/{printf "%d", $2}' "$TMP/wrk.txt")
    NEW=$(comm -13 "$TMP/c0" "$TMP/c1" | wc -l)
    if [ "${NVP:-0}" = 1 ]; then
      MC=$(tail -n +$((L0 + 1)) "$TMP/$name.log" | awk -v req="$REQ" '/gc=(s|mc) /{delete v; for(i=1;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}
        p+=v["pause"]; a+=v["allocated"]; pr+=v["promoted"]; if(v["gc"]=="mc"){m++; if(v["pause"]+0>mx) mx=v["pause"]+0}}
        END{printf "allocated %.0f B, promoted %.0f B, GC %.2f µs per response; %d mark-compacts (longest %.1f ms)", a/req, pr/req, p*1000/req, m, mx}')
    else MC=$(tail -n +$((L0 + 1)) "$TMP/$name.log" | grep -E 'Mark-Compact|Mark-Sweep' | sed -E 's/.*MB, ([0-9.]+) \/ [0-9.]+ ms.*mu = [0-9.]+\) (.*)$/\1; \2/' | paste -sd'|' || true); fi
    if [ "${STRACE:-0}" = 1 ]; then
      printf '%-5s %-10s %8s %7s %8s %7s %7s %5s\n' $round $name $REQ $RPS - - - $NEW
      awk -v req="$REQ" '$4 ~ /^[0-9]+$/ {printf "      %-16s %8.3f calls/response\n", $NF, $4/req}' "$TMP/strace.txt"
    else
      printf '%-5s %-10s %8s %7s %8.1f %7.1f %7.1f %5s %s\n' $round $name $REQ $RPS "$(echo "($U1+$S1-$U0-$S0)*10000/$REQ" | bc -l)" \
        "$(echo "($S1-$S0)*10000/$REQ" | bc -l)" "$(echo "($M1-$M0)*10000/$REQ" | bc -l)" $NEW "${MC:-0}; RSS $RSS MB"
    fi
    [ "${POOLPROBE:-0}" = 1 ] && node -e '
      const [a, b] = [1, 2].map((i) => JSON.parse(require("fs").readFileSync(process.argv[i])));
      const n = b.dispatches - a.dispatches, r = {};
      for (const k in b.reasons) if (b.reasons[k] - (a.reasons[k] ?? 0)) r[k] = b.reasons[k] - (a.reasons[k] ?? 0);
      console.log(`      pool: ${n} searches, walked ${((b.walked - a.walked) / n).toFixed(2)}/search (max so far ${b.maxWalk}), queued ${b.queued - a.queued}, added ${b.created - a.created}, connected ${b.connects - a.connects}, closed ${b.closedRemote - a.closedRemote} by upstream FIN / ${b.closedLocal - a.closedLocal} other, pool ${b.poolSize}, reasons ${JSON.stringify(r)}`);
    ' "$TMP/p0.json" "$TMP/p1.json" || true
  done
done
