#!/usr/bin/env bash
# Builds a real Prometheus server and promtool (the version pinned in
# tools/prometheus/go.mod) from the Go module proxy into bin/prometheus, for
# the simulator's kube-state-metrics test against a real Prometheus
# (cmd/simulator/ksm_prometheus_test.go).
#
# Built with -tags remove_all_sd: Prometheus's own build tag that leaves out
# every service-discovery plugin (AWS, Kubernetes, Consul, ...); the test
# needs none (static targets and backfilled blocks only), and the build is
# several times smaller. Without the builtinassets tag the web UI's assets
# are not embedded; the HTTP API, which is all the simulator uses, is
# complete.
#
# The binaries report the release they are built from (Prometheus's module
# version v0.3MM.P is release 3.MM.P), stamped as Prometheus's release build
# (promu) stamps github.com/prometheus/common/version.
#
# Skips the build when the binaries are present and were built from the
# pinned versions.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/bin/prometheus"
stamp="$(cd "$root/tools/prometheus" && sha256sum go.mod go.sum "$root/tools/build-prometheus.sh" | cut -d' ' -f1 | sha256sum | cut -c1-16)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] \
  && [ -x "$out/prometheus" ] && [ -x "$out/promtool" ]; then
  exit 0
fi
mkdir -p "$out"
rm -f "$out/.stamp"
cd "$root/tools/prometheus"
mv="$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)"; n="${mv#v0.}"; n="${n%%.*}"; patch="${mv##*.}"
release="$(( n / 100 )).$(( n % 100 )).$patch"
flags="-s -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Revision=$mv -X github.com/prometheus/common/version.Branch=module-proxy"
for name in prometheus promtool; do
  echo "building $name (first build takes minutes)" >&2
  start=$(date +%s)
  go build -trimpath -tags remove_all_sd -ldflags="$flags" -o "$out/$name" "github.com/prometheus/prometheus/cmd/$name"
  echo "built $name $release in $(( $(date +%s) - start ))s" >&2
done
echo "$stamp" > "$out/.stamp"
