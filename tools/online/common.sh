# Sourced by the sweep scripts of tools/online: the repository root ($root),
# Go's toolchain, $OUT (default bin/$1) with the simulator built into it,
# and run_reports, a parallel runner of replays.
#   . "$(dirname "$0")/common.sh" DEFAULT_OUT_NAME
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$root/bin/$1}"
JOBS="${JOBS:-2}"
mkdir -p "$OUT"
# Built under another name and renamed, so a replay still running from an
# earlier build keeps its binary.
(cd "$root" && go build -o "$OUT/simulator.new" ./cmd/simulator && mv "$OUT/simulator.new" "$OUT/simulator")

# run_report NAME:FLAGS replays "simulator --quiet FLAGS" into
# $OUT/NAME.json (its stdout, stderr and /usr/bin/time's figures beside it)
# unless that report exists; the report appears only when the replay
# succeeded.
run_report() {
  local name="${1%%:*}" args="${1#*:}"
  [ -f "$OUT/$name.json" ] && return 0
  # shellcheck disable=SC2086
  /usr/bin/time -o "$OUT/$name.time" "$OUT/simulator" --quiet $args --json "$OUT/$name.json.tmp" > "$OUT/$name.txt" 2> "$OUT/$name.err" \
    && mv "$OUT/$name.json.tmp" "$OUT/$name.json" && echo "$name done"
}

# run_reports reads NAME:FLAGS lines on stdin and runs them JOBS at a time.
run_reports() {
  export OUT
  export -f run_report
  xargs -P "$JOBS" -I{} bash -c 'run_report "$@"' _ {}
}
