#!/usr/bin/env bash
# Patch size and creation time against zstd --patch-from and xdelta3 on five
# build-to-build change scenarios. Usage: bench/patch.sh [size, default 512M]
source "$(dirname "$0")/lib.sh"
SIZE=${1:-512M}
[ -n "${NO_BUILD:-}" ] || build
echo "machine: $(machine); zstd $(zstd --version | grep -o 'v[0-9.]*'); xdelta3 $(xdelta3 -V 2>&1 | head -1 | grep -o '[0-9.][0-9.a-z]*' | head -1)"
"$BIN/rockit-bench" gen "$WORK/base" --size "$SIZE" --seed 1
tar cf "$WORK/old.tar" -C "$WORK/base" .
printf '%-9s %12s %12s %12s %9s %9s %9s %7s\n' scenario ours zstd xdelta3 ours_s zstd_s xdelta_s ratio
for sc in rename edits insert reorder newfiles; do
  rm -rf "$WORK/new"; cp -a "$WORK/base" "$WORK/new"
  "$BIN/rockit-bench" mutate "$WORK/new" --scenario $sc --seed 7 2>/dev/null
  tar cf "$WORK/new.tar" -C "$WORK/new" .
  OURS=$("$BIN/rockit-bench" patch "$WORK/old.tar" "$WORK/new.tar" "$WORK/engine")
  OB=$(echo "$OURS" | json "d['patchBytes']"); OS=$(echo "$OURS" | json "round(d['mkpatSeconds'],2)")
  T=$(date +%s.%N); zstd -q -f -19 --long=31 --patch-from="$WORK/old.tar" "$WORK/new.tar" -o "$WORK/p.zst"; ZS=$(python3 -c "print(round($(date +%s.%N)-$T,1))")
  T=$(date +%s.%N); xdelta3 -f -9 -S djw -e -s "$WORK/old.tar" "$WORK/new.tar" "$WORK/p.xd"; XS=$(python3 -c "print(round($(date +%s.%N)-$T,1))")
  ZB=$(stat -c %s "$WORK/p.zst"); XB=$(stat -c %s "$WORK/p.xd")
  R=$(python3 -c "print(round($OB/min($ZB,$XB),2))")
  printf '%-9s %12s %12s %12s %9s %9s %9s %7s\n' $sc $OB $ZB $XB $OS $ZS $XS $R
done
rm -rf "$WORK"
