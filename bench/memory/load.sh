# Sourced by promoted.sh and full-gc.sh: the load both put on a gateway they
# start themselves. Needs ROOT and TMP. `upstream` starts the bench upstream
# (UP, UPPID; GW is the gateway's port, SECRET its JWT secret); after the
# caller starts the gateway (GWPID), `loaded` stops both on exit, makes a
# token, waits for the gateway and defines `run NAME SECONDS`: wrk, 50
# connections, a new URL per request (`/bench?r=NAME-n`).
# RXGATE_LOG_LEVEL would override the bench configs' log.level (access lines on).
unset RXGATE_LOG_LEVEL
UP=$((20000 + RANDOM % 10000)); GW=$((UP + 1))
SECRET=bench-secret-bench-secret-bench-secret

upstream() {
  node --import "$ROOT/bin/loader/register.mjs" "$ROOT/bench/upstream.ts" --port $UP >"$TMP/up.log" 2>&1 & UPPID=$!
}

loaded() {
  trap 'kill $GWPID $UPPID 2>/dev/null; rm -rf "$TMP"' EXIT
  TOKEN=$(cd "$ROOT" && node -e "import('jose').then(async ({SignJWT})=>console.log(await new SignJWT({scope:'bench'}).setProtectedHeader({alg:'HS256'}).setSubject('bench').setExpirationTime('1h').sign(new TextEncoder().encode('$SECRET'))))")
  for _ in $(seq 100); do curl -s -o /dev/null -H "authorization: Bearer $TOKEN" http://127.0.0.1:$GW/bench?r=probe && break; sleep 0.2; done
  cat >"$TMP/v.lua" <<'LUA'
local counter = 0
request = function() counter = counter + 1; return wrk.format(nil, os.getenv("P") .. counter) end
LUA
}

run() { P="/bench?r=$1-" wrk -t1 -c50 -d${2}s --latency -s "$TMP/v.lua" -H "authorization: Bearer $TOKEN" http://127.0.0.1:$GW/ ; }
