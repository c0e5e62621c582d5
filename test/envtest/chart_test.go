package envtest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"
)

// renderedManifests reads a file written by tools/helm/lint.sh (make chart).
func renderedManifests(name string) []*unstructured.Unstructured {
	GinkgoHelper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "bin", "rendered", name)
	data, err := os.ReadFile(path)
	Expect(err).ToNot(HaveOccurred(), "rendered chart missing: run `make chart` (tools/helm/lint.sh) first")
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			Fail(err.Error())
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

var _ = Describe("Helm chart", func() {
	It("renders manifests the API server accepts (server-side dry run, strict schema)", func() {
		ExpectApplied(ctx, env.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "karpenter"}})
		for _, file := range []string{"default.yaml", "fake.yaml"} {
			objs := renderedManifests(file)
			Expect(len(objs)).To(BeNumerically(">", 5), file)
			for _, o := range objs {
				err := env.Client.Create(ctx, o.DeepCopy(), client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))
				Expect(err).ToNot(HaveOccurred(), "%s: %s %s", file, o.GetKind(), o.GetName())
			}
		}
	})
	It("ships the four CRDs (tools/helm/lint.sh checks they are verbatim copies of pkg/apis/crds)", func() {
		crds := renderedManifests("crds.yaml")
		Expect(crds).To(HaveLen(4))
		for _, c := range crds {
			Expect(c.GetKind()).To(Equal("CustomResourceDefinition"))
		}
	})
})
