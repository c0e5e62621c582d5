package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// TestNodePoolRuntimeValidationRestrictsDomains checks what replaces the
// CEL rules the karpenter.sh CRDs no longer carry for karpenter-gpu.io: core's
// NodePool runtime validation (its nodepool.validation controller sets
// ValidationSucceeded from it) accepts the registered labels of
// karpenter-gpu.io and karpenter.k8s.aws and refuses any other key in those
// domains, in requirements and in template labels.
func TestNodePoolRuntimeValidationRestrictsDomains(t *testing.T) {
	pool := func(labels map[string]string, key string) *karpv1.NodePool {
		np := &karpv1.NodePool{}
		np.Spec.Template.Labels = labels
		np.Spec.Template.Spec.NodeClassRef = &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: "gpu"}
		np.Spec.Template.Spec.Requirements = []karpv1.NodeSelectorRequirementWithMinValues{
			{Key: key, Operator: corev1.NodeSelectorOpExists},
		}
		return np
	}
	for _, tc := range []struct {
		name    string
		labels  map[string]string
		key     string
		refused bool
	}{
		{"karpenter-gpu.io well-known requirement", nil, v1alpha1.LabelGPUName, false},
		{"karpenter-gpu.io unknown requirement", nil, v1alpha1.Group + "/gpu-model", true},
		{"karpenter-gpu.io subdomain requirement", nil, "foo." + v1alpha1.Group + "/x", true},
		{"karpenter.k8s.aws well-known requirement", nil, v1alpha1.AWSLabelInstanceGPUName, false},
		{"karpenter.k8s.aws unstated well-known requirement", nil, v1alpha1.AWSGroup + "/instance-hypervisor", false},
		{"karpenter.k8s.aws unknown requirement", nil, v1alpha1.AWSGroup + "/gpu-model", true},
		{"other domain requirement", nil, "example.com/gpu", false},
		{"karpenter-gpu.io well-known label", map[string]string{v1alpha1.LabelInstanceFamily: "g6"}, corev1.LabelArchStable, false},
		{"karpenter-gpu.io unknown label", map[string]string{v1alpha1.Group + "/team": "ml"}, corev1.LabelArchStable, true},
		{"karpenter.k8s.aws unknown label", map[string]string{v1alpha1.AWSGroup + "/team": "ml"}, corev1.LabelArchStable, true},
		{"core restriction kept", nil, "karpenter.sh/foo", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pool(tc.labels, tc.key).RuntimeValidate(context.Background())
			if tc.refused != (err != nil) {
				t.Fatalf("refused: %v, want %v (%v)", err != nil, tc.refused, err)
			}
			if err != nil && !strings.Contains(err.Error(), "not allowed") && !strings.Contains(err.Error(), "restricted") {
				t.Errorf("unexpected reason: %v", err)
			}
		})
	}
}
