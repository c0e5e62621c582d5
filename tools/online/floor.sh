#!/usr/bin/env bash
# The discrete repacking floor (designs/online.md): at sampled moments of a
# trace, the packer's cheapest fleet for every GPU pod alive then, as if all
# of them were pending at once (simulator --snapshot T: one batch, direct
# path). Integrated over time it is what a clairvoyant policy that repacked
# the whole fleet at no cost at every moment would pay, a floor for any
# policy up to the packer's own gap to the integer optimum (it is 1.02x the
# LP bound on batches). The LP bound of each snapshot is reported beside it.
#   tools/online/floor.sh [TRACE]     # default: the bundled default trace
# Samples: every $SPARSE h before $DENSE_FROM h, every $EVERY h after, up to
# $UNTIL h. Then: python3 tools/online/floor.py $OUT
. "$(dirname "$0")/common.sh" online-floor
SPARSE="${SPARSE:-48}" DENSE_FROM="${DENSE_FROM:-2700}" EVERY="${EVERY:-4}" UNTIL="${UNTIL:-3584}"
trace=()
[ $# -gt 0 ] && trace=(--trace "$1")
for h in $(seq 0 "$SPARSE" "$((DENSE_FROM - 1))") $(seq "$DENSE_FROM" "$EVERY" "$UNTIL"); do
  [ -f "$OUT/$h.json" ] && continue
  "$OUT/simulator" --quiet --policy karpenter-gpu "${trace[@]}" --snapshot "${h}h" --duration 2m --json "$OUT/$h.json" > "$OUT/$h.txt"
done
python3 "$root/tools/online/floor.py" "$OUT"
