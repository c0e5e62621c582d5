#!/usr/bin/env bash
# Builds Kueue's manager (sigs.k8s.io/kueue/cmd/kueue, the version pinned in
# tools/kueue/go.mod) from the Go module proxy into bin/kueue/manager and
# copies the same module's CRDs (config/components/crd/bases) into
# bin/kueue/crds, for the Kueue end-to-end test (test/kueue). Skips the build
# when the binary is present and was built from the pinned versions.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/bin/kueue"
stamp="$(cd "$root/tools/kueue" && sha256sum go.mod go.sum | sha256sum | cut -c1-16)"
cd "$root/tools/kueue"
if [ ! -f "$out/.stamp" ] || [ "$(cat "$out/.stamp")" != "$stamp" ] || [ ! -x "$out/manager" ]; then
  mkdir -p "$out"
  rm -f "$out/.stamp"
  echo "building Kueue's manager (first build takes minutes)" >&2
  start=$(date +%s)
  go build -trimpath -ldflags=-s -o "$out/manager" sigs.k8s.io/kueue/cmd/kueue
  echo "built Kueue's manager in $(( $(date +%s) - start ))s" >&2
  echo "$stamp" > "$out/.stamp"
fi
if [ ! -f "$out/crds/.stamp" ] || [ "$(cat "$out/crds/.stamp")" != "$stamp" ]; then
  src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)/config/components/crd/bases"
  rm -rf "$out/crds" && mkdir -p "$out/crds"
  cp "$src"/*.yaml "$out/crds/" && chmod 644 "$out/crds"/*.yaml
  echo "$stamp" > "$out/crds/.stamp"
fi
