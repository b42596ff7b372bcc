# Shared set-up of the scale test and the scale benchmark (sourced): a moto S3 server, a
# fresh PostgreSQL database, and rockit-edge processes that share nothing else: each has
# its own data directory (its cache), and the depot (uploads, chunk stores, trees, staged
# images, the published copy) is the `edge-depot` bucket on moto, as across machines.
# moto also serves the `s3` deployment origin the scale test publishes to.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/rockit-scale.XXXXXX)}
PG_BASE=${EDGE_SCALE_PG:-postgres://postgres@127.0.0.1:5432}
PIDS=()
DB_NAME=""
DEPOT_BUCKET=edge-depot

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_moto: sets MOTO_URL (no authentication: moto's default).
start_moto() {
  python3 -c 'import moto.server' 2>/dev/null || { echo "moto is not installed (pip install 'moto[server]')" >&2; exit 2; }
  local port
  port=$(free_port)
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
  PIDS+=($!)
  MOTO_URL="http://127.0.0.1:$port"
  for _ in $(seq 300); do
    if curl -s -o /dev/null "$MOTO_URL"; then
      curl -sf -X PUT "$MOTO_URL/$DEPOT_BUCKET" >/dev/null || { echo "cannot create the depot bucket"; exit 2; }
      return 0
    fi
    sleep 0.1
  done
  echo "moto did not start:"; cat "$WORK/moto.log"; exit 2
}

# create_db: a fresh database for this run; sets DB_URL.
create_db() {
  DB_NAME="edge_scale_$(date +%s)_$$"
  psql "$PG_BASE/postgres" -qAtc "CREATE DATABASE $DB_NAME" >/dev/null
  DB_URL="$PG_BASE/$DB_NAME"
}

# start_edge N [ROLE]: rockit-edge process N with its own data directory ($WORK/data-N, or
# $DATA-N) on the S3 depot; sets PID_N and URL_N. Logs (JSON) go to $WORK/edge-N.log.
start_edge() {
  local n=$1 role=${2:-all} port dir
  port=$(free_port)
  dir="${DATA:-$WORK/data}-$n"
  mkdir -p "$dir"
  EDGE_DEPOT_S3_ENDPOINT="$MOTO_URL" EDGE_DEPOT_S3_BUCKET="$DEPOT_BUCKET" EDGE_DEPOT_S3_PATH_STYLE=true \
    EDGE_DEPOT_S3_ACCESS_KEY_ID=AKIASCALEDEPOT EDGE_DEPOT_S3_SECRET_ACCESS_KEY=scale-depot-secret \
    EDGE_FS_ORIGIN_ROOT="$WORK/origins" EDGE_DATABASE_URL="$DB_URL" EDGE_ADMIN_SECRET_B64="$SECRET" EDGE_DATA_KEY_B64="$DATA_KEY" \
    EDGE_TASK_LEASE_SECONDS="${LEASE:-60}" EDGE_WORKER_POLL_MS=100 EDGE_ALLOW_PRIVATE_SOURCES=true \
    EDGE_LOG_FORMAT=json EDGE_LOG="${EDGE_LOG:-info,sqlx=warn}" \
    "$EDGE_BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" --role "$role" >>"$WORK/edge-$n.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  eval "PID_$n=$pid; URL_$n=http://127.0.0.1:$port"
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "rockit-edge $n did not start:"; tail -20 "$WORK/edge-$n.log"; exit 2
}

# stop_all: ends every process started here and drops the database.
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  if [ -n "$DB_NAME" ]; then psql "$PG_BASE/postgres" -qAtc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true; fi
  DB_NAME=""
}

cleanup() {
  stop_all
  if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "work directory kept: $WORK"; fi
}

SECRET=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
DATA_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
# An admin token (HS256 JWT) for SECRET.
ADMIN=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b(json.dumps({"username": "scale"}).encode())
print(h + "." + b(hmac.new(base64.b64decode(sys.argv[1]), h.encode(), hashlib.sha256).digest()))
PY
)
export ADMIN
