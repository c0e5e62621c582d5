#!/usr/bin/env bash
# Whole default-trace sweep at Karpenter's own cadence (the simulator's
# defaults: no --disruption-interval), the cadence issue 13's targets are
# stated for (designs/online.md, "Whole-trace sweep at Karpenter's cadence").
# Each setting is one replay of the whole bundled trace, the list below
# (no arguments) or the named settings,
#   simulator --quiet --policy P <setting> --json $OUT/<name>.json
# two at a time (JOBS); stock runs with --no-cache. A karpenter-gpu replay
# takes ~9 min and a stock one ~30 min on a 2-core machine. Settings whose
# report exists are skipped. Then:
#   python3 tools/online/cadence_table.py $OUT
# prints the TSV rows of tools/online/whole-cadence.tsv.
. "$(dirname "$0")/common.sh" whole-cadence
# Settings measured before the default per-pod eviction cost became $0.3
# (the round that ran this sweep) say "--eviction-cost-per-pod 0", so each
# reproduces at any commit; "kg-defaults" is whatever the defaults are.
settings=(
  "stock-default:--policy stock --no-cache"
  "stock-binpack:--policy stock --no-cache --scheduler-profile bin-packing"
  "kg-ecpp0:--policy karpenter-gpu --eviction-cost-per-pod 0"
  "kg-binpack:--policy karpenter-gpu --scheduler-profile bin-packing --eviction-cost-per-pod 0"
  "kg-ecpp0.2:--policy karpenter-gpu --eviction-cost-per-pod 0.2"
  "kg-ecpp0.25:--policy karpenter-gpu --eviction-cost-per-pod 0.25"
  "kg-ecpp0.3:--policy karpenter-gpu --eviction-cost-per-pod 0.3"
  "kg-ecpp0.5:--policy karpenter-gpu --eviction-cost-per-pod 0.5"
  "kg-binpack-ecpp0.2:--policy karpenter-gpu --scheduler-profile bin-packing --eviction-cost-per-pod 0.2"
  "kg-binpack-ecpp0.3:--policy karpenter-gpu --scheduler-profile bin-packing --eviction-cost-per-pod 0.3"
  "kg-be100-ecpp0.5:--policy karpenter-gpu --break-even-percent 100 --eviction-cost-per-pod 0.5"
  "kg-never:--policy karpenter-gpu --protection Never --eviction-cost-per-pod 0"
  "kg-be30:--policy karpenter-gpu --break-even-percent 30 --eviction-cost-per-pod 0"
  "kg-be100:--policy karpenter-gpu --break-even-percent 100 --eviction-cost-per-pod 0"
  "kg-be1000:--policy karpenter-gpu --break-even-percent 1000 --eviction-cost-per-pod 0"
  "kg-be3000:--policy karpenter-gpu --break-even-percent 3000 --eviction-cost-per-pod 0"
  "kg-attrition:--policy karpenter-gpu --drain-by-attrition true --eviction-cost-per-pod 0"
  "kg-balanced:--policy karpenter-gpu --consolidation-policy Balanced --eviction-cost-per-pod 0"
  "kg-norepack:--policy karpenter-gpu --repack false --eviction-cost-per-pod 0"
  "kg-always:--policy karpenter-gpu --protection Always"
  "kg-defaults:--policy karpenter-gpu"
)
if [ "$#" -gt 0 ]; then # run only the named settings
  keep=()
  for s in "${settings[@]}"; do for n in "$@"; do [ "${s%%:*}" = "$n" ] && keep+=("$s"); done; done
  settings=("${keep[@]}")
fi
printf '%s\n' "${settings[@]}" | run_reports
