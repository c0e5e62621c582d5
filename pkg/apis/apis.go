// Package apis embeds the CRDs this provider installs: its own GPUNodeClass
// and copies of Karpenter core's NodePool, NodeClaim (both patched to restrict
// the karpenter-gpu.io label domain) and NodeOverlay CRDs. Regenerate them
// with `make generate` (tools/codegen/generate.sh).
package apis

import (
	"embed"
	"io/fs"
	"sort"

	"github.com/awslabs/operatorpkg/object"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Group is the API group of this provider's resources.
const Group = v1alpha1.Group

//go:embed crds/*.yaml
var crdFS embed.FS

// CRDs are all CRDs this provider needs, sorted by file name.
var CRDs = loadCRDs()

func loadCRDs() []*apiextensionsv1.CustomResourceDefinition {
	names, err := fs.Glob(crdFS, "crds/*.yaml")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(names))
	for _, name := range names {
		raw, err := crdFS.ReadFile(name)
		if err != nil {
			panic(err)
		}
		crds = append(crds, object.Unmarshal[apiextensionsv1.CustomResourceDefinition](raw))
	}
	return crds
}
