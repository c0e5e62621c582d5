package envtest_test

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
	"github.com/karpenter-gpu/karpenter-gpu/test/manifests"
)

// renderedManifests reads a file written by tools/helm/lint.sh (make chart).
func renderedManifests(name string) []*unstructured.Unstructured {
	GinkgoHelper()
	_, file, _, _ := goruntime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "bin", "rendered", name)
	data, err := os.ReadFile(path)
	Expect(err).ToNot(HaveOccurred(), "rendered chart missing: run `make chart` (tools/helm/lint.sh) first")
	out, err := manifests.Decode(data)
	if err != nil {
		Fail(err.Error())
	}
	return out
}

var _ = Describe("Helm chart", func() {
	It("renders manifests the API server accepts (server-side dry run, strict schema)", func() {
		ExpectApplied(ctx, env.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "karpenter"}})
		for _, file := range []string{"default.yaml", "fake.yaml", "coexistence.yaml"} {
			objs := renderedManifests(file)
			Expect(len(objs)).To(BeNumerically(">", 5), file)
			for _, o := range objs {
				var err error
				if o.GetKind() == "CustomResourceDefinition" && o.GetAPIVersion() == "apiextensions.k8s.io/v1" && exists(o) {
					// The suite's API server already serves core's CRDs: an
					// upgrade of them, as helm applies it.
					err = env.Client.Patch(ctx, o.DeepCopy(), client.Apply, client.ForceOwnership, client.FieldOwner("helm"), client.DryRunAll)
				} else {
					err = env.Client.Create(ctx, o.DeepCopy(), client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))
				}
				Expect(err).ToNot(HaveOccurred(), "%s: %s %s", file, o.GetKind(), o.GetName())
			}
		}
	})
	It("ships only karpenter-gpu's CRDs in crds/ (tools/helm/lint.sh checks they are verbatim copies of pkg/apis/crds)", func() {
		crds := renderedManifests("crds.yaml")
		Expect(crds).To(HaveLen(len(apis.OwnCRDs)))
		for i, c := range crds {
			Expect(c.GetKind()).To(Equal("CustomResourceDefinition"))
			Expect(c.GetName()).To(Equal(apis.OwnCRDs[i].Name))
		}
	})
	It("renders core's karpenter.sh CRDs unchanged by default, kept on uninstall, and none with crds.karpenter.install=false", func() {
		core := map[string]*apiextensionsv1.CustomResourceDefinition{}
		for _, crd := range apis.CoreCRDs {
			core[crd.Name] = crd
		}
		rendered := karpenterCRDs(renderedManifests("default.yaml"))
		Expect(rendered).To(HaveLen(len(core)))
		for _, u := range rendered {
			got := &apiextensionsv1.CustomResourceDefinition{}
			Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, got)).To(Succeed())
			want, ok := core[got.Name]
			Expect(ok).To(BeTrue(), got.Name)
			Expect(got.Spec).To(Equal(want.Spec), got.Name)
			Expect(got.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		}
		Expect(karpenterCRDs(renderedManifests("coexistence.yaml"))).To(BeEmpty())
	})
})

// karpenterCRDs are the karpenter.sh CRDs among objs.
func karpenterCRDs(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && strings.HasSuffix(o.GetName(), ".karpenter.sh") {
			out = append(out, o)
		}
	}
	return out
}

// exists reports whether the API server has o.
func exists(o *unstructured.Unstructured) bool {
	GinkgoHelper()
	latest := &unstructured.Unstructured{}
	latest.SetGroupVersionKind(o.GroupVersionKind())
	err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), latest)
	if apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).ToNot(HaveOccurred())
	return true
}
