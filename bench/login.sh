#!/usr/bin/env bash
# Logins under load: POST /be/v1/login (right password) from 40 connections with wrk, and
# meanwhile one connection doing authenticated GET /be/v1/apps; the GET's latency alone
# first, for comparison. Usage: bench/login.sh [seconds] [login connections]
# BIN=/path/to/dir runs another build's rockit-edge (e.g. an older release) without building.
source "$(dirname "$0")/lib.sh"
DUR=${1:-20}
CONNS=${2:-40}
if [ -z "${NO_BUILD:-}" ] && [ "$BIN" = "$ROOT/target/release" ]; then build; fi
start_server
trap stop_server EXIT
pw=$(curl -sf -XPOST "$E/adm/v1/orgs" -H "x-rockit-admin-token: $ADMIN" -H 'content-type: application/json' \
  -d '{"name":"LoadOrg","label":"L","username":"load_admin","email":"a@example.com","firstname":"B","surname":"C"}' | json "d['adminPW']")
TOKEN=$(curl -sf -XPOST "$E/be/v1/login" -H 'content-type: application/json' \
  -d "{\"username\":\"load_admin\",\"password\":\"$pw\",\"orgName\":\"LoadOrg\",\"accessTTL\":86400}" | json "d['accessToken']")
cat >"$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"username":"load_admin","password":"$pw","orgName":"LoadOrg"}'
LUA
echo "machine: $(machine); server: $BIN/rockit-edge"
echo "== GET /be/v1/apps alone, 1 connection =="
wrk -t1 -c1 -d"${DUR}s" --timeout 60s --latency -H "authorization: Bearer $TOKEN" "$E/be/v1/apps" | grep -E "Latency |Requests/sec|50%|99%|Non-2xx|timeout"
echo "== POST /be/v1/login, $CONNS connections, with GET /be/v1/apps on 1 connection meanwhile =="
peak_rss "$SERVER_PID" $((DUR + 5)) "$WORK/rss" &
RSS_PID=$!
wrk -t1 -c1 -d"${DUR}s" --timeout 60s --latency -H "authorization: Bearer $TOKEN" "$E/be/v1/apps" >"$WORK/get.txt" &
GET_PID=$!
wrk -t2 -c"$CONNS" -d"${DUR}s" --timeout 60s --latency -s "$WORK/login.lua" "$E/be/v1/login" | grep -E "Latency |Requests/sec|50%|99%|Non-2xx|timeout|requests in"
wait $GET_PID
echo "-- GET /be/v1/apps meanwhile --"
grep -E "Latency |Requests/sec|50%|99%|Non-2xx|timeout" "$WORK/get.txt"
wait $RSS_PID
echo "server peak RSS: $(cat "$WORK/rss") MiB"
