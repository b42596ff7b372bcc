#!/usr/bin/env bash
# The launcher runtime (issue 14), on a release build and a local server:
#  a. time-to-play of a scripted game through `rockit run --bandwidth 100Mbit` — untrained
#     image, trained image (after TRAIN traced plays and Process Traces), and a full
#     `rockit install` first — each next to `rockit play`'s model of the same play;
#  b. read throughput of a fully cached mount against the same tree on the local disk
#     (GNU tar of the whole tree, page cache dropped before each pass when root);
#  c. peak RSS (VmHWM) of `rockit mount` while a SIZE image streams and is read fully.
# Two seeded games of SIZE: `gen --layout game` for (a) (its layout names what the game
# reads), the default mix for (b) and (c). Needs FUSE (/dev/fuse; fusermount3 unless root).
# Usage: bench/launcher.sh [size, default 2G]   (TRAIN=10 training plays, ROUNDS=3 tar passes,
# ONLY=a or ONLY=bc for one part, ONLY=u for the untrained play alone — RUNS=3 times, next to
# the model of one uncapped reference play —, MOUNT_OPTS=--direct-io for every mount and run,
# KEEP_WORK=1 keeps the work directory with the traces, RTT_MS=N puts the plays behind a
# proxy that delays each request by N ms: bench/rttproxy.py)
source "$(dirname "$0")/lib.sh"
SIZE=${1:-2G}
TRAIN=${TRAIN:-10}
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-abc}
RATE=100Mbit
read -ra EXTRA <<<"${MOUNT_OPTS:-}"
[ -n "${NO_BUILD:-}" ] || build
echo "machine: $(machine); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
ROOT_USER=$([ "$(id -u)" = 0 ] && echo 1 || echo 0)
drop_caches() {
  sync
  if [ "$ROOT_USER" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
[ "$ROOT_USER" = 1 ] || echo "note: not root, the page cache is not dropped between passes"
now() { date +%s.%N; }
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  stop_server
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PART_A=$([[ $ONLY == *a* ]] && echo 1 || echo 0)
PART_U=$([[ $ONLY == *u* && $PART_A == 0 ]] && echo 1 || echo 0)
# The scripted game is published for (a) and for (u).
NEED_GAME=$([[ $PART_A == 1 || $PART_U == 1 ]] && echo 1 || echo 0)
PART_BC=$([[ $ONLY == *b* || $ONLY == *c* ]] && echo 1 || echo 0)
[ "$NEED_GAME" = 0 ] || "$BIN/rockit-bench" gen "$WORK/game" --size "$SIZE" --layout game --seed 1 >/dev/null
[ "$PART_BC" = 0 ] || "$BIN/rockit-bench" gen "$WORK/mix" --size "$SIZE" --seed 1 >/dev/null
LAYOUT="$WORK/game.layout.json"

# The game: boots (executable pages, libraries, configs, shaders, UI, English text), takes
# 1.5 s to initialize, then loads level N (the shared assets every level needs, the level's
# header, index, core data and textures, the shared regions it draws on) in 128 KiB reads;
# prints `LEVEL_LOADED <unix time>` when the level is in memory.
cat >"$WORK/game.py" <<'PY'
import json, sys, time
print("GAME_START %.3f" % time.time(), flush=True)
layout = json.load(open(sys.argv[1]))
def read(regions):
    for path, off, n in regions:
        with open(path, "rb", buffering=0) as f:
            f.seek(off)
            while n > 0:
                b = f.read(min(n, 131072))
                if not b:
                    break
                n -= len(b)
read(layout["boot"])
read(layout["shadersCommon"] + layout["shadersVendor"][0] + layout["ui"])
read([layout["languages"][0]["text"]])
time.sleep(1.5)
lv = layout["levels"][int(sys.argv[2]) - 1]
read(layout["sharedCommon"] + lv["head"] + lv["coreData"] + lv["coreTex"] + lv["shared"])
print("LEVEL_LOADED %.3f" % time.time(), flush=True)
PY

# With RTT_MS, launchers reach the server through bench/rttproxy.py (sessions name it as
# the server's public URL); the publisher's requests and uploads go straight.
SERVE_E=$E
if [ -n "${RTT_MS:-}" ]; then
  SERVE_E="http://127.0.0.1:$((PORT + 1))"
  python3 "$(dirname "$0")/rttproxy.py" $((PORT + 1)) "$PORT" "$RTT_MS" &
  PROXY_PID=$!
  trap 'kill $PROXY_PID 2>/dev/null; cleanup' EXIT
  export EDGE_PUBLIC_URL=$SERVE_E
  echo "plays behind a proxy adding $RTT_MS ms to every request"
fi
start_server
TOKEN=$(org_token BenchOrg)
H=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')
curl -sf -XPOST "$E/be/v1/deployments" "${H[@]}" -d '{"name":"local","origin":{"type":"fs","path":"site"}}' >/dev/null

# publish APP DIR: creates the app, imports DIR's tar, waits for the deploy; prints its client key.
publish() {
  local key imp url group s
  key=$(curl -sf -XPOST "$E/be/v1/apps" "${H[@]}" -d "{\"name\":\"$1\",\"label\":\"$1\"}" | json "d['app']['clientKey']")
  tar cf "$WORK/$1.tar" -C "$2" .
  imp=$(curl -sf -XPOST "$E/be/v1/builds" "${H[@]}" -d "{\"appName\":\"$1\",\"buildName\":\"bench\"}")
  url=$(echo "$imp" | json "d['uploadUrl']"); group=$(echo "$imp" | json "d['taskGroup']")
  url=${url/#$SERVE_E/$E}
  curl -sf -T "$WORK/$1.tar" "$url" >/dev/null
  rm -f "$WORK/$1.tar"
  while :; do
    s=$(curl -sf "$E/be/v1/tasks?taskGroup=$group&type=deploy" -H "authorization: Bearer $TOKEN" | json "d['tasks'][0]['status']")
    [ "$s" = done ] && break
    if [ "$s" = error ] || [ "$s" = canceled ]; then echo "pipeline of $1 failed" >&2; exit 1; fi
    sleep 0.5
  done
  echo "$key"
}
dxf_of() { curl -sf "$E/be/v1/apps/$1" -H "authorization: Bearer $TOKEN" | json "d['app']['dxfName']"; }
image_dir() { echo "$WORK/data/origins/site/dxf/BenchOrg/$1/0001/$2"; }
if [ "$NEED_GAME" = 1 ]; then
  GAME_KEY=$(publish Game "$WORK/game")
  # Process Traces is triggered by hand below, after exactly TRAIN plays.
  curl -sf -XPATCH "$E/be/v1/trainings" "${H[@]}" -d '{"appName":"Game","nTracesReliable":100000}' >/dev/null
  UNTRAINED=$(dxf_of Game)
  echo "published: Game, $(du -sm "$(image_dir Game "$UNTRAINED")" | cut -f1) MiB image"
  GAME=(--server "$SERVE_E" --org BenchOrg --app Game --client-key "$GAME_KEY")
fi
if [ "$PART_BC" = 1 ]; then
  MIX_KEY=$(publish Mix "$WORK/mix")
  echo "published: Mix, $(du -sm "$(image_dir Mix "$(dxf_of Mix)")" | cut -f1) MiB image"
fi

# play NAME LEVEL [rockit run options…]: `rockit run` of the game on a fresh cache; prints
# the seconds from launch to LEVEL_LOADED and to the game's start; the trace is kept in
# $WORK/NAME.trace.json.
play() {
  local name=$1 level=$2 t0 marker started; shift 2
  t0=$(now)
  "$BIN/rockit" run --json "${EXTRA[@]}" "${GAME[@]}" --cache "$WORK/cache-$name" --trace-out "$WORK/$name.trace.json" "$@" \
    -- python3 "$WORK/game.py" "$LAYOUT" "$level" >"$WORK/$name.out" 2>"$WORK/$name.err" \
    || { echo "play $name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
  marker=$(awk '/^LEVEL_LOADED/{print $2}' "$WORK/$name.out")
  started=$(awk '/^GAME_START/{print $2}' "$WORK/$name.out")
  rm -rf "$WORK/cache-$name"
  python3 -c "print(f'{$marker - $t0:.2f} {$started - $t0:.2f}')"
}
# model IMAGE_DIR TRACE FIELD: `rockit play` at 100 Mbit/s.
model() { "$BIN/rockit" play "$1" --trace "$2" --mbit 100 --json | json "d['$3']"; }
# traffic NAME: what the play NAME downloaded, from its `rockit run --json` summary.
traffic() {
  tail -1 "$WORK/$1.err" | python3 -c "import sys,json; d=json.load(sys.stdin); print(f'$1 run: {d[\"stalls\"]} stalls ({d[\"stallSeconds\"]} s), downloaded {d[\"downloadedBytes\"]/1e6:.1f} MB in {d[\"requests\"]} requests; of them the stream {d[\"streamedBytes\"]/1e6:.1f} MB in {d[\"streamRequests\"]}')"
}

if [ "$PART_U" = 1 ]; then
  echo
  echo "== (u) the untrained image at $RATE, ${RUNS:-3} plays, against the on-demand model"
  play train1 1 >/dev/null
  M=$(model "$(image_dir Game "$UNTRAINED")" "$WORK/train1.trace.json" onDemandSeconds)
  "$BIN/rockit" install "${GAME[@]}" --cache "$WORK/cache-install" "$WORK/installed" >/dev/null
  rm -rf "$WORK/cache-install"
  T1=$(now); (cd "$WORK/installed" && python3 "$WORK/game.py" "$LAYOUT" 1 >"$WORK/disk.out")
  GAME_S=$(python3 -c "print(f'{$(awk '/^LEVEL_LOADED/{print $2}' "$WORK/disk.out") - $T1:.2f}')")
  for k in $(seq "${RUNS:-3}"); do
    read -r REAL START < <(play "untrained$k" 1 --bandwidth "$RATE")
    python3 -c "print(f'play $k: real {$REAL:.2f} s (start {$START:.2f} s), model {$M:.2f} + game {$GAME_S:.2f} s, real/model {$REAL / ($M + $GAME_S):.2f}')"
    traffic "untrained$k"
  done
fi

if [ "$PART_A" = 1 ]; then
echo
echo "== (a) time-to-play at $RATE: launch until the scripted game has loaded level 1"
# Full download first: install at the cap, then the game from the local disk (that run is
# also the game's own stall-free time, which the model adds to its start time).
T0=$(now)
"$BIN/rockit" install "${GAME[@]}" --cache "$WORK/cache-install" --bandwidth "$RATE" "$WORK/installed" >/dev/null
T1=$(now)
(cd "$WORK/installed" && python3 "$WORK/game.py" "$LAYOUT" 1 >"$WORK/disk.out")
T2=$(now)
rm -rf "$WORK/cache-install"
DISK_MARK=$(awk '/^LEVEL_LOADED/{print $2}' "$WORK/disk.out")
INSTALL_S=$(python3 -c "print(f'{$T1 - $T0:.2f}')")
GAME_S=$(python3 -c "print(f'{$DISK_MARK - $T1:.2f}')")
read -r UNTRAINED_S UNTRAINED_START < <(play untrained 1 --bandwidth "$RATE")
# Training: TRAIN plays on the uncapped loopback (one of them picks level 2), traces sent.
for k in $(seq "$TRAIN"); do
  level=1; [ "$k" = 5 ] && level=2
  play "train$k" "$level" >/dev/null
done
TASK=$(curl -sf -XPOST "$E/be/v1/trigger" "${H[@]}" -d '{"type":"traces","appName":"Game"}' | json "d['taskName']")
for _ in $(seq 1200); do
  TRAINED=$(dxf_of Game)
  [ "$TRAINED" != "$UNTRAINED" ] && break
  S=$(curl -sf "$E/be/v1/tasks/$TASK" -H "authorization: Bearer $TOKEN" | json "d['task']['status']")
  if [ "$S" = error ] || [ "$S" = canceled ]; then echo "mkseq $S" >&2; curl -s "$E/be/v1/tasks/$TASK" -H "authorization: Bearer $TOKEN" >&2; exit 1; fi
  sleep 0.5
done
[ "$TRAINED" != "$UNTRAINED" ] || { echo "no trained image after 10 minutes" >&2; exit 1; }
curl -sf "$E/be/v1/tasks/$TASK" -H "authorization: Bearer $TOKEN" | json "d['task']['result']" | sed 's/^/mkseq: /'
read -r TRAINED_S TRAINED_START < <(play trained 1 --bandwidth "$RATE")
# The model: the first training play's trace (uncapped, so its times are the game's own
# pace) against each image; time-to-play = the model's start time + the game's own time.
REF="$WORK/train1.trace.json"
# The runtime fetches what a read lacks at once (and starts after the manifest's preload):
# `onDemandSeconds` models that; `timeToPlaySeconds` is the wait of a launcher that only
# streams (formats.md's S), printed too.
M_UNTRAINED=$(model "$(image_dir Game "$UNTRAINED")" "$REF" onDemandSeconds)
M_TRAINED=$(model "$(image_dir Game "$TRAINED")" "$REF" onDemandSeconds)
echo "stream-only model (S): untrained $(model "$(image_dir Game "$UNTRAINED")" "$REF" timeToPlaySeconds) s, trained $(model "$(image_dir Game "$TRAINED")" "$REF" timeToPlaySeconds) s"
M_FULL=$(model "$(image_dir Game "$UNTRAINED")" "$REF" fullDownloadSeconds)
python3 - "$INSTALL_S" "$GAME_S" "$UNTRAINED_S" "$TRAINED_S" "$M_UNTRAINED" "$M_TRAINED" "$M_FULL" "$UNTRAINED_START" "$TRAINED_START" <<'PY'
import sys
inst, game, unt, tr, m_unt, m_tr, m_full, s_unt, s_tr = map(float, sys.argv[1:])
print(f"the game on the local disk: {game:.2f} s from launch to level 1 loaded")
print(f"{'image':<24} {'real start':>10} {'model start':>11} {'real':>8} {'model':>8} {'real/model':>10}")
for name, real, start, rs in [("untrained (tar order)", unt, m_unt, s_unt), ("trained (mkseq)", tr, m_tr, s_tr),
                              ("full download first", inst + game, m_full, inst)]:
    model = start + game
    print(f"{name:<24} {rs:>9.2f}s {start:>10.2f}s {real:>7.2f}s {model:>7.2f}s {real / model:>10.2f}")
print("(start: launch until the game runs; real: launch until level 1 is loaded; model: its start + the game's own time on the local disk)")
PY
for name in untrained trained; do traffic "$name"; done
fi

[ "$PART_BC" = 1 ] || exit 0
echo
echo "== (b) and (c): $SIZE mix, rockit mount uncapped; tar of the whole tree"
MNT="$WORK/mnt"; mkdir -p "$MNT"; MOUNTS+=("$MNT")
MIX=(--server "$E" --org BenchOrg --app Mix --client-key "$MIX_KEY" --cache "$WORK/cache-mix")
# mount_start: `rockit mount` in the background; sets MOUNT_PID once it is mounted.
mount_start() {
  : >"$WORK/mount.out"
  "$BIN/rockit" mount --json --progress "${EXTRA[@]}" "${MIX[@]}" "$MNT" >"$WORK/mount.out" 2>"$WORK/mount.err" &
  MOUNT_PID=$!
  for _ in $(seq 600); do grep -q mounted "$WORK/mount.out" && return; sleep 0.1; done
  echo "rockit mount did not mount" >&2; cat "$WORK/mount.err" >&2; exit 1
}
mount_stop() { kill -TERM "$MOUNT_PID"; wait "$MOUNT_PID" || true; }
hwm() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$MOUNT_PID/status"; }
# tar_pass DIR: seconds and bytes of `tar cf - . | wc -c` in DIR. (GNU tar writing to
# /dev/null itself reads no file data at all, so its output goes through a pipe.)
tar_pass() {
  local t0 n
  t0=$(now)
  n=$(cd "$1" && tar cf - . | wc -c)
  python3 -c "print(f'{$(now) - $t0:.3f} $n')"
}
mount_start
read -r S N < <(tar_pass "$MNT")
python3 -c "print(f'tar while the image streams (cold cache): {$N/$S/1e6:.0f} MB/s ({$S:.1f} s)')"
# tar read every byte of every file, so every chunk is verified and cached now.
echo "rockit mount peak RSS (VmHWM) after streaming and reading $SIZE: $(hwm) MiB"
: >"$WORK/rates"
for r in $(seq "$ROUNDS"); do
  drop_caches; read -r S N < <(tar_pass "$MNT"); echo "mount $S $N" >>"$WORK/rates"
  drop_caches; read -r S2 N2 < <(tar_pass "$WORK/mix"); echo "disk $S2 $N2" >>"$WORK/rates"
  [ "$N" = "$N2" ] || echo "warning: the mount gave $N bytes of tar, the disk $N2" >&2
  python3 -c "print(f'round $r: mount {$N/$S/1e6:.0f} MB/s ({$S:.1f} s), local disk {$N2/$S2/1e6:.0f} MB/s ({$S2:.1f} s)')"
done
echo "rockit mount peak RSS (VmHWM) at the end: $(hwm) MiB"
mount_stop
# A fresh mount on the complete cache: each chunk is hashed again before its first use.
mount_start
drop_caches; read -r S N < <(tar_pass "$MNT")
python3 -c "print(f'fresh mount on the complete cache (chunks re-hashed on first use): {$N/$S/1e6:.0f} MB/s ({$S:.1f} s)')"
echo "its peak RSS: $(hwm) MiB"
mount_stop
python3 - "$WORK/rates" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
rate = lambda kind: st.median(int(r[2]) / float(r[1]) / 1e6 for r in rows if r[0] == kind)
m, d = rate("mount"), rate("disk")
print(f"median of {len(rows)//2}: cached mount {m:.0f} MB/s, local disk {d:.0f} MB/s = {100*m/d:.0f} % of native (target >= 50 %)")
PY
