#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, kube-scheduler,
# kube-controller-manager, etcd) from
# the Go module proxy into bin/k8s. Skips the build when the binaries are
# present and were built from the versions pinned in tools/go.mod.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/bin/k8s"
stamp="$(cd "$root/tools" && sha256sum go.mod go.sum | sha256sum | cut -c1-16)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] \
  && [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-scheduler" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/etcd" ]; then
  exit 0
fi
mkdir -p "$out"
cd "$root/tools"
for target in k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-controller-manager go.etcd.io/etcd/server/v3; do
  name="$(basename "$target")"; [ "$name" = v3 ] && name=etcd
  echo "building $name (first build takes minutes)" >&2
  start=$(date +%s)
  go build -trimpath -ldflags=-s -o "$out/$name" "$target"
  echo "built $name in $(( $(date +%s) - start ))s" >&2
done
echo "$stamp" > "$out/.stamp"
