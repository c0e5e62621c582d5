#!/usr/bin/env bash
# Sweeps karpenter-gpu's online settings against stock Karpenter on windows of
# the bundled default trace (designs/online.md). Each run is
#   simulator --compare --start W --duration 24h <setting>
# with its JSON report in $OUT/W<window>-<setting>.json; stock is replayed
# once per window and kube-scheduler profile and reused from the simulator's
# cache. Every setting says "--eviction-cost-per-pod 0", the default when
# online-sweep.svg was measured ($0.3 since the seventeenth round).
# Then: python3 tools/online/plot.py $OUT designs/online-sweep.svg
. "$(dirname "$0")/common.sh" online-sweep
WINDOWS="${WINDOWS:-2784h 3100h 3400h}"
settings=(
  "be100:--break-even-percent 100 --eviction-cost-per-pod 0"
  "be300:--break-even-percent 300 --eviction-cost-per-pod 0"
  "be1000:--break-even-percent 1000 --eviction-cost-per-pod 0"
  "be3000:--break-even-percent 3000 --eviction-cost-per-pod 0"
  "always:--protection Always"
  "binpack:--break-even-percent 1000 --scheduler-profile bin-packing --eviction-cost-per-pod 0"
  "binpack100:--break-even-percent 100 --scheduler-profile bin-packing --eviction-cost-per-pod 0"
  "balanced:--break-even-percent 1000 --consolidation-policy Balanced --eviction-cost-per-pod 0"
  "repackbp:--break-even-percent 1000 --scheduler-profile bin-packing --repack true --eviction-cost-per-pod 0"
  "repack:--break-even-percent 1000 --repack true --eviction-cost-per-pod 0"
  "attrition:--break-even-percent 1000 --drain-by-attrition true --eviction-cost-per-pod 0"
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
