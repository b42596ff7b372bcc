#!/usr/bin/env bash
# Upload throughput of `rockit push --no-wait` of a game directory (its tar made on the fly)
# against `curl -T` of the same tree's GNU tar, each to a fresh upload URL of a release
# server, in alternating order; the clients' CPU time and the CLI's peak RSS.
#
# rockit's time is the whole command (directory walk, POST /be/v1/builds, upload); curl's
# only the PUT. The tree is the same every round, so after the first import every import is
# an identical build (mkraw hashes it, nothing is published) and pipelines stay short; each
# is let finish, and the disk flushed, before the next upload. The server's data directory
# is on /dev/shm when it has room (TMPFS=0 to keep it on disk): the server then receives at
# memory speed, and the figures compare the clients rather than the disk's write-back.
# Usage: bench/push.sh [size, default 2G]   (ROUNDS=5 rounds; medians reported)
source "$(dirname "$0")/lib.sh"
SIZE=${1:-2G}
ROUNDS=${ROUNDS:-5}
[ -n "${NO_BUILD:-}" ] || build
echo "machine: $(machine)"
"$BIN/rockit-bench" gen "$WORK/game" --size "$SIZE" --seed 1 >/dev/null 2>&1
tar cf "$WORK/game.tar" -C "$WORK/game" .
BYTES=$(stat -c %s "$WORK/game.tar")
SHM=
if [ "${TMPFS:-1}" = 1 ] && [ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -gt $((4 * BYTES / 1024 + 1048576)) ] 2>/dev/null; then
  SHM=$(mktemp -d /dev/shm/rockit-bench.XXXXXX)
  ln -s "$SHM" "$WORK/data"
fi
echo "server data: ${SHM:-$WORK/data (disk)}"
start_server
cleanup() { stop_server; [ -z "$SHM" ] || rm -rf "$SHM"; }
trap cleanup EXIT
TOKEN=$(org_token BenchOrg)
H=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')
curl -sf -XPOST "$E/be/v1/deployments" "${H[@]}" -d '{"name":"local","origin":{"type":"fs","path":"site"}}' >/dev/null
curl -sf -XPOST "$E/be/v1/apps" "${H[@]}" -d '{"name":"Game","label":"Game","maxBuilds":2}' >/dev/null
# The CLI authenticates with an API key from the environment; its config stays in $WORK.
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/xdg" ROCKIT_SERVER="$E"
ROCKIT_API_KEY=$(curl -sf -XPOST "$E/be/v1/apikeys" "${H[@]}" -d '{"label":"bench"}' | json "d['apiKey']")
export ROCKIT_API_KEY
# Waits until the pipeline has ended and its files are written out.
idle() { "$BIN/rockit" tasks watch --app Game --until-idle --interval 0.5 >/dev/null; sync; }
# timed FILE CMD...: runs CMD under /usr/bin/time; FILE gets "elapsed user sys maxrss_kb".
timed() {
  local out=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%e %U %S %M' -o "$out" "$@"
  else
    local t0; t0=$(date +%s.%N)
    "$@" & peak_rss $! 3600 "$out.rss"; wait $!
    echo "$(python3 -c "print($(date +%s.%N) - $t0)") 0 0 $(( $(cat "$out.rss") * 1024 ))" >"$out"
  fi
}
run_curl() {
  local url
  url=$(curl -sf -XPOST "$E/be/v1/builds" "${H[@]}" -d '{"appName":"Game","buildName":"curl"}' | json "d['uploadUrl']")
  timed "$WORK/t.curl" curl -sf -T "$WORK/game.tar" "$url" -o /dev/null
  echo "curl $BYTES $(cat "$WORK/t.curl")" >>"$WORK/results"
}
run_cli() {
  timed "$WORK/t.cli" "$BIN/rockit" push "$WORK/game" --app Game --build-name cli --no-wait --json >"$WORK/push.json"
  echo "rockit $(json "d['sizeBytes']" <"$WORK/push.json") $(cat "$WORK/t.cli")" >>"$WORK/results"
}
: >"$WORK/results"
idle
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run_curl; idle; run_cli; idle; else run_cli; idle; run_curl; idle; fi
  tail -2 "$WORK/results" | awk -v r="$r" '{printf "round %s: %-6s %4.0f MiB/s  (%.2f s, cpu %.2f s user + %.2f s sys, max RSS %d MiB)\n", r, $1, $2/$3/1048576, $3, $4, $5, $6/1024}'
done
python3 - "$WORK/results" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
def med(tool, f):
    return st.median(f(r) for r in rows if r[0] == tool)
rate = lambda r: int(r[1]) / float(r[2]) / 2**20
cpu = lambda r: float(r[3]) + float(r[4])
c, p = med("curl", rate), med("rockit", rate)
print(f"median of {len(rows)//2} rounds: curl -T {c:.0f} MiB/s (cpu {med('curl', cpu):.2f} s), "
      f"rockit push --no-wait {p:.0f} MiB/s (cpu {med('rockit', cpu):.2f} s) = {100*p/c:.0f} % of curl (target >= 90 %)")
print(f"rockit peak RSS: {max(int(r[5]) for r in rows if r[0] == 'rockit')/1024:.0f} MiB (target < 50)")
PY
stop_server
rm -rf "$WORK"
