#!/usr/bin/env bash
# Sequence optimisation (issue 5): a seeded synthetic game of SIZE (default 8G) with
# structure, 24 training and 12 held-out play sessions, and the held-out preload at
# 100 Mbit/s of tar order, per-file and per-chunk first-access orders, the optimiser (with
# and without its tail order) and each session's own bound. Usage: bench/seq.sh [size] [trace seed]
source "$(dirname "$0")/lib.sh"
SIZE=${1:-8G}
SEED=${2:-1}
[ -n "${NO_BUILD:-}" ] || build
echo "machine: $(machine)"
"$BIN/rockit-bench" gen "$WORK/game" --size "$SIZE" --layout game --seed 1
"$BIN/rockit-bench" traces --game "$WORK/game" --count 36 --seed "$SEED" --out "$WORK/traces"
"$BIN/rockit-bench" seq --game "$WORK/game" --traces "$WORK/traces" --train 24 --holdout 12 --tree "$WORK/tree.json"
rm -rf "$WORK"
