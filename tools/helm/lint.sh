#!/usr/bin/env bash
# Lints and renders charts/karpenter-gpu:
#   - builds helm $HELM_VERSION into bin/helm once (go install; skipped when
#     bin/helm is already that version),
#   - checks charts/karpenter-gpu/crds is a verbatim copy of pkg/apis/crds
#     (karpenter-gpu's own CRDs) and files/karpenter-crds of core's
#     karpenter.sh CRDs in the pinned sigs.k8s.io/karpenter module,
#   - helm lint --strict with the default, the EKS-like and the coexistence
#     values,
#   - helm template into bin/rendered/: crds.yaml (the chart's crds/),
#     default.yaml (default values: also core's karpenter.sh CRDs),
#     fake.yaml (backend fake, as the e2e run uses), eks.yaml
#     (tools/helm/values-eks.yaml; contains a ServiceMonitor, which needs the
#     prometheus-operator CRD) and coexistence.yaml
#     (tools/helm/values-coexistence.yaml: beside Karpenter for AWS, no
#     karpenter.sh CRDs),
#   - checks values.schema.json rejects invalid values.
# Apply crds.yaml before the others, into an existing namespace "karpenter".
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
HELM_VERSION=v3.22.0
bin="$root/bin"
helm="$bin/helm"
out="$bin/rendered"
chart=charts/karpenter-gpu
release=karpenter-gpu
namespace=karpenter
# Kubernetes version templates are rendered for (the envtest API server's);
# a go-installed helm otherwise assumes v1.20.
kube_version=1.36.1
mkdir -p "$bin" "$out"
# Keep helm's cache/config/data out of $HOME.
export HELM_CACHE_HOME="$bin/.helm/cache" HELM_CONFIG_HOME="$bin/.helm/config" HELM_DATA_HOME="$bin/.helm/data"

helm_version() { go version -m "$helm" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" {print $3}'; }
if [ "$(helm_version)" != "$HELM_VERSION" ]; then
  # One build at a time, even when several callers start at once.
  exec 9>"$bin/.helm.lock"
  flock 9
  if [ "$(helm_version)" != "$HELM_VERSION" ]; then
    echo "building helm $HELM_VERSION into bin/helm (once; takes a few minutes)"
    GOBIN="$bin" GOFLAGS= go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
  exec 9>&-
fi
"$helm" version --short

echo "--- CRDs: $chart/crds must equal pkg/apis/crds, $chart/files/karpenter-crds core's"
if ! diff -r pkg/apis/crds "$chart/crds"; then
  echo "FAIL: $chart/crds differs from pkg/apis/crds; run tools/helm/sync-crds.sh" >&2
  exit 1
fi
core_crds="$(go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)/pkg/apis/crds"
for f in karpenter.sh_nodepools.yaml karpenter.sh_nodeclaims.yaml karpenter.sh_nodeoverlays.yaml; do
  if ! cmp -s "$core_crds/$f" "$chart/files/karpenter-crds/$f"; then
    echo "FAIL: $chart/files/karpenter-crds/$f differs from sigs.k8s.io/karpenter's; run tools/helm/sync-crds.sh" >&2
    exit 1
  fi
done
if [ "$(ls "$chart/files/karpenter-crds" | wc -l)" != 3 ]; then
  echo "FAIL: $chart/files/karpenter-crds holds other files than core's three CRDs" >&2
  exit 1
fi

echo "--- helm lint"
"$helm" lint --strict --kube-version "$kube_version" "$chart"
"$helm" lint --strict --kube-version "$kube_version" "$chart" -f tools/helm/values-eks.yaml
"$helm" lint --strict --kube-version "$kube_version" "$chart" -f tools/helm/values-coexistence.yaml
"$helm" lint --strict --kube-version "$kube_version" "$chart" --set settings.backend=fake

echo "--- helm template -> bin/rendered/"
"$helm" show crds "$chart" > "$out/crds.yaml"
"$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" > "$out/default.yaml"
"$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" --set settings.backend=fake > "$out/fake.yaml"
"$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" -f tools/helm/values-eks.yaml > "$out/eks.yaml"
"$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" -f tools/helm/values-coexistence.yaml > "$out/coexistence.yaml"
for f in "$out"/*.yaml; do
  printf '%-32s %s\n' "${f#"$root"/}" "$(grep -E '^kind: ' "$f" | sort | uniq -c | awk '{printf "%s%s×%s", sep, $3, $1; sep=", "}')"
done

echo "--- ServiceMonitor keeps the metrics' own labels (honorLabels)"
if ! awk '/^kind: ServiceMonitor/{sm=1} sm && /honorLabels: true/{found=1} END{exit !found}' "$out/eks.yaml"; then
  echo "FAIL: the ServiceMonitor in $out/eks.yaml lacks honorLabels: true (namespace would become exported_namespace)" >&2
  exit 1
fi

echo "--- karpenter.sh CRDs: core's three by default (kept on uninstall), none beside another Karpenter"
karpenter_crds() { awk '/^kind: CustomResourceDefinition/{crd=1} /^---/{crd=0} crd && /^  name: [a-z]+\.karpenter\.sh$/{print $2}' "$1" | sort | tr '\n' ' '; }
for f in default fake eks; do
  got="$(karpenter_crds "$out/$f.yaml")"
  if [ "$got" != "nodeclaims.karpenter.sh nodeoverlays.karpenter.sh nodepools.karpenter.sh " ]; then
    echo "FAIL: $out/$f.yaml renders karpenter.sh CRDs [$got], want core's three" >&2
    exit 1
  fi
  if [ "$(grep -c 'helm.sh/resource-policy: keep' "$out/$f.yaml")" -lt 3 ]; then
    echo "FAIL: $out/$f.yaml: karpenter.sh CRDs without helm.sh/resource-policy: keep" >&2
    exit 1
  fi
done
if [ -n "$(karpenter_crds "$out/coexistence.yaml")" ]; then
  echo "FAIL: $out/coexistence.yaml renders CRDs; crds.karpenter.install=false must leave karpenter.sh to the installed Karpenter" >&2
  exit 1
fi
echo "default, fake, eks: nodepools, nodeclaims, nodeoverlays.karpenter.sh (kept on uninstall); coexistence: none"

echo "--- interruption queue: INTERRUPTION_QUEUE only when settings.interruptionQueue is set"
if ! grep -q 'name: INTERRUPTION_QUEUE' "$out/eks.yaml" || ! grep -A1 'name: INTERRUPTION_QUEUE' "$out/eks.yaml" | grep -q 'value: "karpenter-gpu-my-cluster"'; then
  echo "FAIL: $out/eks.yaml lacks INTERRUPTION_QUEUE=karpenter-gpu-my-cluster (tools/helm/values-eks.yaml sets settings.interruptionQueue)" >&2
  exit 1
fi
if grep -q 'name: INTERRUPTION_QUEUE' "$out/default.yaml"; then
  echo "FAIL: $out/default.yaml sets INTERRUPTION_QUEUE; interruption handling is off by default" >&2
  exit 1
fi

echo "--- values.schema.json rejects invalid values"
reject() {
  if "$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" "$@" > /dev/null 2>&1; then
    echo "FAIL: helm template accepted $*" >&2
    exit 1
  fi
  echo "rejected: $*"
}
reject --set settings.backend=gcp
reject --set settings.policy=cheapest
reject --set logLevel=verbose
reject --set settings.featureGates.NodeRepiar=true
reject --set settings.featureGates.CapacityBuffer=true # refused by the controller (pkg/controllers/provisioning)
reject --set settings.batchMaxDuration=10
reject --set serviceAccount.roleArn=my-role
reject --set replicas=two
reject --set unknownKey=1
reject --set crds.karpenter.install=maybe
reject --set settings.interruptionQueue=https://sqs.us-west-2.amazonaws.com/123456789012/karpenter-gpu
echo "helm lint and template OK"
