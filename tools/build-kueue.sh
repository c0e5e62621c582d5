#!/usr/bin/env bash
# Builds Kueue's manager (sigs.k8s.io/kueue/cmd/kueue, the version pinned in
# tools/kueue/go.mod) from the Go module proxy into bin/kueue/manager and
# copies the same module's CRDs (config/components/crd/bases) into
# bin/kueue/crds, for the Kueue end-to-end test (test/kueue).
#
# Kueue's manager refuses to start against an API server that does not report
# a parseable version, and bin/k8s/kube-apiserver reports the source tree's
# placeholder (v0.0.0-master+$Format:%H$), so a kube-apiserver with its
# release version stamped (k8s.io/kubernetes of tools/go.mod, stamped as
# Kubernetes' release build does; a relink after tools/build-envtest.sh)
# goes into bin/kueue/kube-apiserver.
#
# Skips the builds when the binaries are present and were built from the
# pinned versions.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/bin/kueue"
stamp="$(cd "$root/tools" && sha256sum kueue/go.mod kueue/go.sum go.mod go.sum | sha256sum | cut -c1-16)"
mkdir -p "$out"
if [ ! -f "$out/.stamp" ] || [ "$(cat "$out/.stamp")" != "$stamp" ] || [ ! -x "$out/manager" ] || [ ! -x "$out/kube-apiserver" ]; then
  rm -f "$out/.stamp"
  echo "building Kueue's manager (first build takes minutes)" >&2
  start=$(date +%s)
  (cd "$root/tools/kueue" && go build -trimpath -ldflags=-s -o "$out/manager" sigs.k8s.io/kueue/cmd/kueue)
  echo "built Kueue's manager in $(( $(date +%s) - start ))s" >&2
  start=$(date +%s)
  kv="$(cd "$root/tools" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"; kv="${kv#v}"
  major="${kv%%.*}"; minor="${kv#*.}"; minor="${minor%%.*}"
  flags="-s"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $pkg.gitVersion=v$kv -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$root/tools" && go build -trimpath -ldflags="$flags" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  echo "built kube-apiserver reporting v$kv in $(( $(date +%s) - start ))s" >&2
  echo "$stamp" > "$out/.stamp"
fi
if [ ! -f "$out/crds/.stamp" ] || [ "$(cat "$out/crds/.stamp")" != "$stamp" ]; then
  src="$(cd "$root/tools/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)/config/components/crd/bases"
  rm -rf "$out/crds" && mkdir -p "$out/crds"
  cp "$src"/*.yaml "$out/crds/" && chmod 644 "$out/crds"/*.yaml
  echo "$stamp" > "$out/crds/.stamp"
fi
