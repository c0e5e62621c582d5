#!/usr/bin/env bash
# Sweeps karpenter-gpu's online settings against stock Karpenter on windows of
# the bundled default trace (designs/online.md). Each run is
#   simulator --compare --start W --duration 24h <setting>
# with its JSON report in $OUT/W<window>-<setting>.json; stock is replayed
# once per window and kube-scheduler profile and reused from the simulator's
# cache. Then: python3 tools/online/plot.py $OUT designs/online-sweep.svg
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$root/bin/online-sweep}"
WINDOWS="${WINDOWS:-2784h 3100h 3400h}"
mkdir -p "$OUT"
(cd "$root" && go build -o "$OUT/simulator" ./cmd/simulator)
settings=(
  "be100:--break-even-percent 100"
  "be300:--break-even-percent 300"
  "be1000:--break-even-percent 1000"
  "be3000:--break-even-percent 3000"
  "always:--protection Always"
  "binpack:--break-even-percent 1000 --scheduler-profile bin-packing"
  "binpack100:--break-even-percent 100 --scheduler-profile bin-packing"
  "balanced:--break-even-percent 1000 --consolidation-policy Balanced"
  "repackbp:--break-even-percent 1000 --scheduler-profile bin-packing --repack true"
  "repack:--break-even-percent 1000 --repack true"
  "attrition:--break-even-percent 1000 --drain-by-attrition true"
)
for w in $WINDOWS; do
  for s in "${settings[@]}"; do
    name="W$w-${s%%:*}"
    [ -f "$OUT/$name.json" ] && continue
    # shellcheck disable=SC2086
    "$OUT/simulator" --quiet --compare --start "$w" --duration 24h ${s#*:} --json "$OUT/$name.json" > "$OUT/$name.txt"
    echo "$name done"
  done
done
