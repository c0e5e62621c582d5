package apis_test

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
)

func TestCRDs(t *testing.T) {
	want := map[string]apiextensionsv1.ResourceScope{
		"gpunodeclasses.karpenter-gpu.io": apiextensionsv1.ClusterScoped,
		"nodepools.karpenter.sh":          apiextensionsv1.ClusterScoped,
		"nodeclaims.karpenter.sh":         apiextensionsv1.ClusterScoped,
		"nodeoverlays.karpenter.sh":       apiextensionsv1.ClusterScoped,
	}
	if len(apis.CRDs) != len(want) {
		t.Fatalf("got %d CRDs, want %d", len(apis.CRDs), len(want))
	}
	for _, crd := range apis.CRDs {
		scope, ok := want[crd.Name]
		if !ok {
			t.Errorf("unexpected CRD %q", crd.Name)
			continue
		}
		if crd.Spec.Scope != scope {
			t.Errorf("%s: scope %q, want %q", crd.Name, crd.Spec.Scope, scope)
		}
		if len(crd.Spec.Versions) == 0 || crd.Spec.Versions[0].Schema == nil || crd.Spec.Versions[0].Schema.OpenAPIV3Schema == nil {
			t.Errorf("%s: no schema", crd.Name)
		}
	}
	gpu := find(t, "gpunodeclasses.karpenter-gpu.io")
	if gpu.Spec.Group != apis.Group || gpu.Spec.Names.Kind != "GPUNodeClass" || gpu.Spec.Versions[0].Name != "v1alpha1" {
		t.Errorf("GPUNodeClass CRD: group %q kind %q version %q", gpu.Spec.Group, gpu.Spec.Names.Kind, gpu.Spec.Versions[0].Name)
	}
	if gpu.Spec.Versions[0].Subresources == nil || gpu.Spec.Versions[0].Subresources.Status == nil {
		t.Error("GPUNodeClass CRD has no status subresource")
	}
}

// TestCoreCRDsPatched checks that the karpenter-gpu.io domain rule is present
// on NodePool/NodeClaim requirement keys and NodePool template labels.
func TestCoreCRDsPatched(t *testing.T) {
	const msg = `label domain "karpenter-gpu.io" is restricted`
	np := find(t, "nodepools.karpenter.sh").Spec.Versions[0].Schema.OpenAPIV3Schema
	tmpl := np.Properties["spec"].Properties["template"]
	hasRule(t, "nodepool requirement key", tmpl.Properties["spec"].Properties["requirements"].Items.Schema.Properties["key"], msg)
	hasRule(t, "nodepool template labels", tmpl.Properties["metadata"].Properties["labels"], msg)
	nc := find(t, "nodeclaims.karpenter.sh").Spec.Versions[0].Schema.OpenAPIV3Schema
	hasRule(t, "nodeclaim requirement key", nc.Properties["spec"].Properties["requirements"].Items.Schema.Properties["key"], msg)
}

func find(t *testing.T, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	for _, crd := range apis.CRDs {
		if crd.Name == name {
			return crd
		}
	}
	t.Fatalf("CRD %s not embedded", name)
	return nil
}

func hasRule(t *testing.T, what string, s apiextensionsv1.JSONSchemaProps, msg string) {
	t.Helper()
	for _, r := range s.XValidations {
		if r.Message == msg {
			return
		}
	}
	t.Errorf("%s: no rule with message %q", what, msg)
}
