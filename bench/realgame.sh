#!/usr/bin/env bash
# Real game data: SuperTuxKart 1.2 (Debian bullseye) → 1.4 (bookworm), pushed through a real
# server (SQLite, fs origin), with patch bytes, mkpat seconds, image bytes and import seconds
# next to zstd -3/-19 --long=31 --patch-from, xdelta3 -9 -S djw -B and tar | zstd -19
# --long=31, every round trip verified. A benchmark, not a test.
# Usage: bench/realgame.sh   (CACHE=dir keeps the downloads between runs; SKIP_SLOW=1 leaves
# out zstd -19 --patch-from, which takes minutes; SETTLE=1 lets settling finish on build 1.2
# before build 1.4 comes, and reports the image once 1.4's own chunks are settled too)
source "$(dirname "$0")/lib.sh"
CACHE=${CACHE:-/var/tmp/rockit-realgame}
[ -n "${NO_BUILD:-}" ] || build
mkdir -p "$CACHE/lists/partial" "$CACHE/archives/partial"

# The packages through a private apt configuration: the system's sources stay untouched.
cat >"$CACHE/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOF
APT=(-o "Dir::Etc::SourceList=$CACHE/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$CACHE/lists" -o "Dir::Cache=$CACHE" -o Dir::State::Status=/var/lib/dpkg/status
  -o APT::Sandbox::User=root)
if ! ls "$CACHE"/supertuxkart-data_1.2*.deb "$CACHE"/supertuxkart-data_1.4*.deb >/dev/null 2>&1 \
  || { ! command -v xdelta3 >/dev/null && ! ls "$CACHE"/xdelta3_*.deb >/dev/null 2>&1; }; then
  apt-get "${APT[@]}" update -qq
  V12=$(apt-cache "${APT[@]}" madison supertuxkart-data | awk '$3 ~ /^1\.2/ {print $3; exit}')
  V14=$(apt-cache "${APT[@]}" madison supertuxkart-data | awk '$3 ~ /^1\.4/ {print $3; exit}')
  (cd "$CACHE" && apt-get "${APT[@]}" download "supertuxkart-data=$V12" "supertuxkart-data=$V14" xdelta3 >/dev/null)
fi
XDELTA=$(command -v xdelta3 || true)
if [ -z "$XDELTA" ]; then
  dpkg-deb -x "$(ls "$CACHE"/xdelta3_*.deb | head -1)" "$CACHE/xdelta3"
  XDELTA="$CACHE/xdelta3/usr/bin/xdelta3"
fi
# Each game's tree; its symlinks into /usr/share/fonts are dropped (links stay inside a build).
for v in 1.2 1.4; do
  mkdir -p "$WORK/x$v"
  dpkg-deb -x "$(ls "$CACHE"/supertuxkart-data_$v*.deb | head -1)" "$WORK/x$v"
  mv "$WORK/x$v/usr/share/games/supertuxkart" "$WORK/stk-$v"
  find "$WORK/stk-$v" -type l | while read -r l; do
    case "$(readlink -f "$l" || true)" in "$WORK/stk-$v"/*) ;; *) rm "$l" ;; esac
  done
  tar cf "$WORK/stk-$v.tar" -C "$WORK/stk-$v" .
  rm -rf "$WORK/x$v"
done
OLD="$WORK/stk-1.2.tar" NEW="$WORK/stk-1.4.tar"
echo "machine: $(machine); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "zstd $(zstd --version | grep -o 'v[0-9.]*'); xdelta3 $("$XDELTA" -V 2>&1 | head -1 | grep -o '[0-9][0-9.]*' | head -1)"
echo "SuperTuxKart 1.2: $(stat -c %s "$OLD") bytes of tar; 1.4: $(stat -c %s "$NEW")"

secs() { python3 -c "print(round($(date +%s.%N) - $1, 2))"; }

# Ours, through a real server: build 1, then build 2 (its mkpat patches from build 1).
start_server
trap stop_server EXIT
publisher BenchOrg Stk
# import TAR NAME: upload → published; prints the seconds, leaves the task group in $WORK/group.
import() {
  local t0 imp url s GROUP
  t0=$(date +%s.%N)
  imp=$(curl -sf -XPOST "$E/be/v1/builds" "${H[@]}" -d "{\"appName\":\"Stk\",\"buildName\":\"$2\"}")
  url=$(echo "$imp" | json "d['uploadUrl']"); GROUP=$(echo "$imp" | json "d['taskGroup']")
  echo "$GROUP" >"$WORK/group"
  curl -sf -T "$1" "$url" >/dev/null
  while :; do
    s=$(curl -sf "$E/be/v1/tasks?taskGroup=$GROUP&type=deploy" -H "authorization: Bearer $TOKEN" | json "d['tasks'][0]['status']")
    [ "$s" = done ] && break
    if [ "$s" = error ] || [ "$s" = canceled ]; then
      echo "pipeline failed" >&2; curl -s "$E/be/v1/tasks?taskGroup=$GROUP" -H "authorization: Bearer $TOKEN" >&2; exit 1
    fi
    sleep 0.2
  done
  secs "$t0"
}
# settled: how many chunks the settling thread has looked at so far (its three outcomes).
settled() {
  curl -sf "$E/metrics" -H "x-rockit-admin-token: $ADMIN" \
    | awk '/^edge_settle_chunks_total/ {n += $2} END {print n + 0}'
}
# settle_wait: waits until every chunk in the store has been settled; prints the seconds.
settle_wait() {
  local t0 n
  t0=$(date +%s.%N)
  n=$(find "$WORK/data/chunks" -type f -regex '.*/[0-9a-f]*$' | wc -l)
  until [ "$(settled)" -ge "$n" ]; do sleep 1; done
  secs "$t0"
}
I1=$(import "$OLD" 1.2)
if [ -n "${SETTLE:-}" ]; then
  # Settling runs by default after a publish; SETTLE=1 lets it finish on build 1.2 before
  # build 1.4 comes, as on a service where builds are hours apart.
  S1=$(settle_wait)
  echo "settling build 1.2's chunks: $S1 s after it was published"
fi
I2=$(import "$NEW" 1.4)
TASKS=$(curl -sf "$E/be/v1/tasks?taskGroup=$(cat "$WORK/group")&order[]=created" -H "authorization: Bearer $TOKEN")
step() { echo "$TASKS" | python3 -c '
import sys, json, datetime
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
for t in json.load(sys.stdin)["tasks"]:
    if t["type"] == sys.argv[1]:
        print(round((p(t["ended"]) - p(t["started"])).total_seconds(), 1))' "$1"; }
DXF=$(curl -sf "$E/be/v1/apps/Stk" -H "authorization: Bearer $TOKEN" | json "d['app']['dxfName']")
IMG="$WORK/data/origins/site/dxf/BenchOrg/Stk/0002/$DXF"
PAT=$(dirname "$(find "$WORK/data/origins/site/pat" -name patch.json | head -1)")
IMG_B=$(du -sb "$IMG" | cut -f1); PAT_B=$(du -sb "$PAT" | cut -f1)
if [ -n "${SETTLE:-}" ]; then
  # The image the next write of build 1.4 (a sequence learned from traces) would carry,
  # once 1.4's own new chunks are settled too: its chunks as stored now, and its index.
  S2=$(settle_wait)
  IMG_S=$(python3 - "$IMG" "$WORK/data/chunks" <<'PY'
import json, os, sys, glob
img, root = sys.argv[1], sys.argv[2]
store = glob.glob(os.path.join(root, "*"))[0]
rows = json.load(open(os.path.join(img, "index.json")))["chunks"]
packs = sum(os.path.getsize(os.path.join(store, r[0][:2], r[0])) - 1 for r in rows)
rest = sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img) if not f.startswith("pack-"))
print(packs + rest)
PY
)
fi
stop_server; trap - EXIT
# Round trips: the image unpacks to build 2; the patch applied to build 1 gives build 2.
"$BIN/rockit" unpack "$IMG" "$WORK/un" >/dev/null && diff -r "$WORK/stk-1.4" "$WORK/un" >/dev/null \
  && echo "image round trip: identical" || { echo "image round trip FAILED"; exit 1; }
"$BIN/rockit" apply "$PAT" "$WORK/stk-1.2" "$WORK/ap" >/dev/null && diff -r "$WORK/stk-1.4" "$WORK/ap" >/dev/null \
  && echo "patch round trip: identical" || { echo "patch round trip FAILED"; exit 1; }
rm -rf "$WORK/un" "$WORK/ap"
# The engine's mkpat alone, timed to the millisecond (the task's times have whole seconds).
ENG=$("$BIN/rockit-bench" patch "$OLD" "$NEW" "$WORK/engine")
MKPAT=$(echo "$ENG" | json "round(d['mkpatSeconds'], 2)"); rm -rf "$WORK/engine"

# The peers, each decoded again and compared.
peer() { # NAME ENCODE... ; DECODE given in DEC
  local t0 t
  t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t=$(secs "$t0")
  eval "$DEC" && cmp -s "$WORK/back" "$NEW" || { echo "$NAME round trip FAILED"; exit 1; }
  rm -f "$WORK/back"
  printf '%-40s %12s %8s\n' "$NAME" "$(stat -c %s "$WORK/p")" "$t"
}
printf '%-40s %12s %8s\n' "patch old → new" bytes seconds
printf '%-40s %12s %8s  (task: %s s)\n' "ours (mkpat, engine alone)" "$PAT_B" "$MKPAT" "$(step mkpat)"
DEC='zstd -q -d --long=31 --patch-from="$OLD" "$WORK/p" -o "$WORK/back"'
NAME="zstd -3 --long=31 -T2 --patch-from" peer zstd -q -f -3 --long=31 -T2 --patch-from="$OLD" "$NEW" -o "$WORK/p"
if [ -z "${SKIP_SLOW:-}" ]; then
  NAME="zstd -19 --long=31 -T2 --patch-from" peer zstd -q -f -19 --long=31 -T2 --patch-from="$OLD" "$NEW" -o "$WORK/p"
fi
DEC='"$XDELTA" -d -f -B 2147483648 -s "$OLD" "$WORK/p" "$WORK/back"'
NAME="xdelta3 -9 -S djw -B 2 GiB" peer "$XDELTA" -f -9 -S djw -B 2147483648 -e -s "$OLD" "$NEW" "$WORK/p"

printf '\n%-40s %12s %8s\n' "image of 1.4" bytes seconds
printf '%-40s %12s %8s  (mkdxf task: %s s)\n' "ours (upload → published)" "$IMG_B" "$I2" "$(step mkdxf)"
if [ -z "${SKIP_SLOW:-}" ]; then
  DEC='zstd -q -d --long=31 "$WORK/p" -o "$WORK/back"'
  NAME="tar | zstd -19 --long=31 -T2" peer zstd -q -f -19 --long=31 -T2 "$NEW" -o "$WORK/p"
fi
if [ -n "${SETTLE:-}" ]; then
  printf '%-40s %12s %8s\n' "ours, 1.4's own chunks settled too" "$IMG_S" "$S2"
fi
echo "build 1.2 upload → published: $I1 s"
rm -rf "$WORK"
