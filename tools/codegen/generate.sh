#!/usr/bin/env bash
# Regenerates everything derived from pkg/apis:
#   - pkg/apis/v1alpha1/zz_generated.deepcopy.go   (controller-gen object)
#   - pkg/apis/crds/karpenter-gpu.io_*.yaml         (controller-gen crd)
# Karpenter core's karpenter.sh CRDs are used as core ships them (pkg/apis
# embeds sigs.k8s.io/karpenter/pkg/apis; tools/helm/sync-crds.sh copies them
# into the chart).
# controller-gen is built once into bin/controller-gen from the version pinned
# in tools/codegen/go.mod, and rebuilt when that pin changes.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/bin"
mkdir -p "$bin"

stamp="$(cd "$root/tools/codegen" && sha256sum go.mod go.sum | sha256sum | cut -c1-16)"
if [ ! -x "$bin/controller-gen" ] || [ "$(cat "$bin/.controller-gen.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "building controller-gen" >&2
  (cd "$root/tools/codegen" && go build -trimpath -o "$bin/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
  echo "$stamp" > "$bin/.controller-gen.stamp"
fi

cd "$root"
"$bin/controller-gen" object paths=./pkg/apis/...
"$bin/controller-gen" crd paths=./pkg/apis/... output:crd:artifacts:config=pkg/apis/crds
