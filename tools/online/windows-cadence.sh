#!/usr/bin/env bash
# Windows of the bundled default trace and of the multi-GPU variant
# (tools/online/variant.py, seeds 1 and 2, or SEEDS) at Karpenter's own cadence, for
# the settings a whole-trace sweep (whole-cadence.sh) shortlists: a check
# that a default chosen on the whole trace holds on other workloads
# (designs/online.md). Each run is
#   simulator --quiet --policy P [--trace T] --start W --duration D <setting> --json $OUT/<window>-<setting>.json
# two at a time (JOBS). Reports that exist are skipped. Then:
#   python3 tools/online/windows_table.py $OUT
. "$(dirname "$0")/common.sh" windows-cadence
shared="${SHARED:-$root/../shared/traces}"
for seed in ${SEEDS:-1 2}; do
  v="$root/bin/variant-multigpu-s$seed.csv"
  [ -f "$v" ] || python3 "$root/tools/online/variant.py" "$shared/alibaba-v2023-openb_pod_list_default.csv" \
    "$shared/alibaba-v2023-openb_pod_list_multigpu50.csv" "$v" "$seed"
done
# WINDOWS: one "name:flags" per line (@VARIANT-N@ stands for the variant
# of seed N, which SEEDS must list)
mapfile -t windows <<< "${WINDOWS:-day116:--start 2784h --duration 24h
week2700:--start 2700h --duration 168h
w3300:--start 3300h --duration 48h
v1day3100:--trace @VARIANT-1@ --start 3100h --duration 24h
v2day3400:--trace @VARIANT-2@ --start 3400h --duration 48h}"
for i in "${!windows[@]}"; do
  windows[i]="$(sed -E "s#@VARIANT-([0-9]+)@#$root/bin/variant-multigpu-s\1.csv#g" <<< "${windows[i]}")"
done
# SETTINGS: one "name:flags" per line
mapfile -t settings <<< "${SETTINGS:-stock:--policy stock --no-cache
kg-ecpp0:--policy karpenter-gpu --eviction-cost-per-pod 0
kg-ecpp0.3:--policy karpenter-gpu --eviction-cost-per-pod 0.3}"
jobs=()
for w in "${windows[@]}"; do for s in "${settings[@]}"; do jobs+=("${w%%:*}-${s%%:*}:${w#*:} ${s#*:}"); done; done
printf '%s\n' "${jobs[@]}" | run_reports
