#!/usr/bin/env bash
# Scale test: two `rockit-edge serve` processes on one PostgreSQL database, a moto S3
# server as the `s3` deployment origin, 20 concurrent imports across 5 apps through both
# APIs; checks that every import completed exactly once (each task started by exactly one
# process, attempts 1), one image per build on the origin, per-app order (build ids and
# deploy ends in submission order). Then kill -9 of one process while it runs a task: the
# other one takes it over once its lease expired and finishes the work.
#
# The processes share only the database and the depot bucket (on moto); each has its own
# data directory, as on separate machines; see scripts/scale-lib.sh.
#
# Needs PostgreSQL (EDGE_SCALE_PG, default postgres://postgres@127.0.0.1:5432), python3
# with moto, GNU tar, curl. Binary: EDGE_BIN, else target/release/rockit-edge when newer
# than target/debug/rockit-edge, else the debug one (built when missing).
# Exits non-zero with "SCALE TEST FAILED: …" on any failed check.
source "$(dirname "$0")/scale-lib.sh"
cd "$ROOT"
if [ -z "${EDGE_BIN:-}" ]; then
  if [ -x target/release/rockit-edge ] && [ target/release/rockit-edge -nt target/debug/rockit-edge ]; then
    EDGE_BIN=target/release/rockit-edge
  else
    [ -x target/debug/rockit-edge ] || cargo build --bin rockit-edge
    EDGE_BIN=target/debug/rockit-edge
  fi
fi
EDGE_BIN=$(cd "$(dirname "$EDGE_BIN")" && pwd)/$(basename "$EDGE_BIN")
export LEASE=${LEASE:-5}
trap cleanup EXIT
T0=$SECONDS
echo "scale test: $EDGE_BIN, work $WORK"
start_moto
create_db
start_edge 1
start_edge 2
export URL_1 URL_2 PID_1 PID_2 MOTO_URL WORK DEPOT_BUCKET
if ! python3 "$ROOT/scripts/scale.py" test; then
  echo "--- last log lines of process 1:"; tail -n 15 "$WORK/edge-1.log" || true
  echo "--- last log lines of process 2:"; tail -n 15 "$WORK/edge-2.log" || true
  exit 1
fi
echo "scale test: ok in $((SECONDS - T0)) s"
