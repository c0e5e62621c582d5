package apis_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
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

// TestCoreCRDsAreCoresOwn checks that the karpenter.sh CRDs are Karpenter
// core's, byte for byte (sigs.k8s.io/karpenter/pkg/apis), and that the Helm
// chart's files/karpenter-crds holds exactly those files: nothing of
// karpenter-gpu's is patched in, so any Karpenter's karpenter.sh CRDs of the
// same API serve it.
func TestCoreCRDsAreCoresOwn(t *testing.T) {
	dir := filepath.Join("..", "..", "charts", "karpenter-gpu", "files", "karpenter-crds")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := slices.Sorted(maps.Keys(apis.CoreCRDFiles))
	if !slices.Equal(names, want) {
		t.Fatalf("%s holds %v, want %v", dir, names, want)
	}
	for name, core := range apis.CoreCRDFiles {
		chart, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(chart, core) {
			t.Errorf("%s differs from sigs.k8s.io/karpenter's pkg/apis/crds/%s; run tools/helm/sync-crds.sh", filepath.Join(dir, name), name)
		}
		if bytes.Contains(core, []byte(apis.Group)) {
			t.Errorf("core's %s mentions %s", name, apis.Group)
		}
	}
	for _, crd := range apis.CoreCRDs {
		if crd.Spec.Group != "karpenter.sh" {
			t.Errorf("core CRD %s has group %q", crd.Name, crd.Spec.Group)
		}
	}
	for _, crd := range apis.OwnCRDs {
		if crd.Spec.Group != apis.Group {
			t.Errorf("own CRD %s has group %q", crd.Name, crd.Spec.Group)
		}
	}
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
