#!/usr/bin/env bash
# Throughput and latency of an authenticated GET /be/v1/apps (empty list) against GET /,
# with wrk, plus the server's peak RSS during the run. Usage: bench/api.sh [seconds]
source "$(dirname "$0")/lib.sh"
DUR=${1:-20}
[ -n "${NO_BUILD:-}" ] || build
start_server
trap stop_server EXIT
TOKEN=$(org_token BenchOrg)
curl -sf "$E/be/v1/apps" -H "authorization: Bearer $TOKEN" >/dev/null
echo "machine: $(machine)"
peak_rss "$SERVER_PID" $((2 * DUR + 6)) "$WORK/rss" &
RSS_PID=$!
echo "== GET / =="
wrk -t2 -c32 -d"${DUR}s" --latency "$E/" | tee "$WORK/root.txt" | grep -E "Requests/sec|50%|99%"
echo "== GET /be/v1/apps (Bearer access token) =="
wrk -t2 -c32 -d"${DUR}s" --latency -H "authorization: Bearer $TOKEN" "$E/be/v1/apps" | tee "$WORK/apps.txt" | grep -E "Requests/sec|50%|99%|Non-2xx"
wait $RSS_PID
root=$(awk '/Requests\/sec/{print $2}' "$WORK/root.txt"); apps=$(awk '/Requests\/sec/{print $2}' "$WORK/apps.txt")
echo "ratio authenticated/trivial: $(python3 -c "print(f'{$apps/$root*100:.1f} %')")"
echo "server peak RSS: $(cat "$WORK/rss") MiB"
