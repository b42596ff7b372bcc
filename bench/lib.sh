# Shared helpers for the benchmark scripts (sourced). Not tests: see docs/BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-"$ROOT/target/release"}
WORK=${WORK:-$(mktemp -d /tmp/rockit-bench.XXXXXX)}
PORT=${PORT:-18181}
E="http://127.0.0.1:$PORT"

build() { (cd "$ROOT" && cargo build --release --bins >/dev/null); }

json() { python3 -c "import sys,json; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

# start_server: runs rockit-edge serve on $WORK/data; sets SERVER_PID and ADMIN.
start_server() {
  mkdir -p "$WORK/data"
  EDGE_LOG=warn EDGE_ALLOW_PRIVATE_SOURCES=true "$BIN/rockit-edge" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "$E/healthz" >/dev/null && break; sleep 0.1; done
  ADMIN=$("$BIN/rockit-edge" admin-token --data-dir "$WORK/data" --username bench)
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

# org_token NAME: creates an org and prints an access token of its admin.
org_token() {
  local pw
  pw=$(curl -sf -XPOST "$E/adm/v1/orgs" -H "x-rockit-admin-token: $ADMIN" -H 'content-type: application/json' \
    -d "{\"name\":\"$1\",\"label\":\"$1\",\"username\":\"${1}_admin\",\"email\":\"a@example.com\",\"firstname\":\"B\",\"surname\":\"C\"}" | json "d['adminPW']")
  curl -sf -XPOST "$E/be/v1/login" -H 'content-type: application/json' \
    -d "{\"username\":\"${1}_admin\",\"password\":\"$pw\",\"orgName\":\"$1\"}" | json "d['accessToken']"
}

# peak_rss PID SECONDS FILE: samples VmRSS every 0.2 s, keeps the peak (MiB) in FILE.
peak_rss() {
  local pid=$1 end=$((SECONDS + $2)) out=$3 peak=0 r
  echo 0 >"$out"
  while [ $SECONDS -lt $end ] && kill -0 "$pid" 2>/dev/null; do
    r=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    if [ "${r:-0}" -gt "$peak" ]; then peak=$r; echo $((peak / 1024)) >"$out"; fi
    sleep 0.2
  done
}

machine() { echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(date -u +%Y-%m-%d)"; }

# publisher ORG APP: an org with an fs deployment "local" and app APP; sets TOKEN and H (the
# headers of its admin's JSON requests).
publisher() {
  TOKEN=$(org_token "$1")
  H=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')
  curl -sf -XPOST "$E/be/v1/deployments" "${H[@]}" -d '{"name":"local","origin":{"type":"fs","path":"site"}}' >/dev/null
  curl -sf -XPOST "$E/be/v1/apps" "${H[@]}" -d "{\"name\":\"$2\",\"label\":\"$2\"}" >/dev/null
}
