#!/usr/bin/env bash
# Import throughput, upload → published on an fs origin, of a seeded synthetic build, and
# the server's peak RSS meanwhile. Then `rockit unpack` speed from that origin.
# Usage: bench/import.sh [size, default 2G]
source "$(dirname "$0")/lib.sh"
SIZE=${1:-2G}
[ -n "${NO_BUILD:-}" ] || build
echo "machine: $(machine)"
"$BIN/rockit-bench" gen "$WORK/game" --size "$SIZE" --seed 1
tar cf "$WORK/game.tar" -C "$WORK/game" .
BYTES=$(stat -c %s "$WORK/game.tar")
start_server
trap stop_server EXIT
publisher BenchOrg Game
peak_rss "$SERVER_PID" 3600 "$WORK/rss" &
RSS_PID=$!
T0=$(date +%s.%N)
IMP=$(curl -sf -XPOST "$E/be/v1/builds" "${H[@]}" -d '{"appName":"Game","buildName":"bench"}')
URL=$(echo "$IMP" | json "d['uploadUrl']"); GROUP=$(echo "$IMP" | json "d['taskGroup']")
curl -sf -T "$WORK/game.tar" "$URL" >/dev/null
T1=$(date +%s.%N)
while :; do
  S=$(curl -sf "$E/be/v1/tasks?taskGroup=$GROUP&type=deploy" -H "authorization: Bearer $TOKEN" | json "d['tasks'][0]['status']")
  [ "$S" = done ] && break
  [ "$S" = error ] || [ "$S" = canceled ] && { echo "pipeline failed"; curl -s "$E/be/v1/tasks?taskGroup=$GROUP" -H "authorization: Bearer $TOKEN"; exit 1; }
  sleep 0.2
done
T2=$(date +%s.%N)
kill $RSS_PID 2>/dev/null; wait $RSS_PID 2>/dev/null || true
python3 - "$BYTES" "$T0" "$T1" "$T2" <<'PY'
import sys
b, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"build: {b/2**20:.0f} MiB tar; upload {t1-t0:.1f} s; upload → published {t2-t0:.1f} s = {b/(t2-t0)/1e6:.0f} MB/s end to end")
PY
curl -sf "$E/be/v1/tasks?taskGroup=$GROUP&order[]=created" -H "authorization: Bearer $TOKEN" | python3 -c '
import sys, json, datetime
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
for t in json.load(sys.stdin)["tasks"]:
    d = (p(t["ended"]) - p(t["started"])).total_seconds()
    print("  %-7s %4.0f s (second resolution)" % (t["type"], d))'
echo "server peak RSS during import: $(cat "$WORK/rss" 2>/dev/null || echo '?') MiB"
APP=$(curl -sf "$E/be/v1/apps/Game" -H "authorization: Bearer $TOKEN")
DXF=$(echo "$APP" | json "d['app']['dxfName']")
IMG="$WORK/data/origins/site/dxf/BenchOrg/Game/0001/$DXF"
echo "image: $(du -sm "$IMG" | cut -f1) MiB in $(ls "$IMG" | wc -l) files"
# The server goes before the unpack: a player's machine has no server settling chunks
# (and a server still writing its store would keep the work directory from going).
stop_server; trap - EXIT
if [ -x "$BIN/rockit" ]; then
  sync; T3=$(date +%s.%N)
  "$BIN/rockit" unpack "$IMG" "$WORK/unpacked" >/dev/null
  T4=$(date +%s.%N)
  python3 -c "import sys; b=$BYTES; t=$T4-$T3; print(f'rockit unpack: {t:.1f} s = {b/t/1e6:.0f} MB/s of build data')"
  diff -r "$WORK/game" "$WORK/unpacked" >/dev/null && echo "unpacked tree identical"
fi
rm -rf "$WORK"
