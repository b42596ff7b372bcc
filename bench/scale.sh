#!/usr/bin/env bash
# Scale benchmark: imports per minute and task latency (submit → deploy end, p50/p95) with
# one and with two `rockit-edge serve` processes (API + workers each, own data directories)
# on one PostgreSQL database and an S3 depot on moto, publishing to an fs origin.
# Usage: bench/scale.sh [imports, default 40] [apps, default 8] [build size, default 16M]
# Needs PostgreSQL (EDGE_SCALE_PG, default postgres://postgres@127.0.0.1:5432).
source "$(dirname "$0")/../scripts/scale-lib.sh"
IMPORTS=${1:-40}
APPS=${2:-8}
SIZE=${3:-16M}
cd "$ROOT"
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin rockit-edge --bin rockit-bench >/dev/null
EDGE_BIN="$ROOT/target/release/rockit-edge"
export BENCH_BIN="$ROOT/target/release/rockit-bench" WORK
export EDGE_LOG=${EDGE_LOG:-warn}
# Access tokens outlive a slow run.
export EDGE_ACCESS_TTL=86400
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), PostgreSQL $(psql "$PG_BASE/postgres" -Atc 'SHOW server_version'), $(date -u +%Y-%m-%d)"
echo "workload: $IMPORTS imports of ~$SIZE generated builds across $APPS apps (per app: rockit-bench gen, then each next build the previous one plus new files, rockit-bench mutate newfiles), submitted at once"
for n in 1 2; do
  # stop_all ends moto too: each run gets a fresh depot.
  start_moto
  create_db
  DATA="$WORK/run-$n"
  start_edge 1
  URL_2=""
  [ "$n" = 2 ] && start_edge 2
  export URL_1 URL_2
  python3 "$ROOT/scripts/scale.py" bench --imports "$IMPORTS" --apps "$APPS" --size "$SIZE" --label "$n process(es)"
  stop_all
  unset DATA
done
