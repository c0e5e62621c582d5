// Package apis holds the CRDs karpenter-gpu needs: its own GPUNodeClass
// (generated into crds/ by `make generate`) and Karpenter core's NodePool,
// NodeClaim and NodeOverlay exactly as sigs.k8s.io/karpenter ships them.
//
// Core's CRDs are not patched for the karpenter-gpu.io label domain, so the
// karpenter.sh CRDs of a Karpenter already in the cluster (for example
// Karpenter for AWS, whose copies restrict only karpenter.k8s.aws) serve
// karpenter-gpu unchanged. Unknown karpenter-gpu.io keys in a NodePool are
// refused at run time instead: v1alpha1 registers the domain as restricted,
// and core's NodePool validation controller sets ValidationSucceeded=False.
package apis

import (
	"embed"
	"io/fs"
	"sort"

	"github.com/awslabs/operatorpkg/object"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	coreapis "sigs.k8s.io/karpenter/pkg/apis"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Group is the API group of this provider's resources.
const Group = v1alpha1.Group

//go:embed crds/*.yaml
var crdFS embed.FS

// OwnCRDs are the CRDs of this provider's API group (GPUNodeClass), sorted by
// file name: what the Helm chart always installs.
var OwnCRDs = loadCRDs()

// CoreCRDs are Karpenter core's CRDs this provider uses, unmodified: what
// the chart installs only when the cluster has no Karpenter yet.
var CoreCRDs = []*apiextensionsv1.CustomResourceDefinition{
	object.Unmarshal[apiextensionsv1.CustomResourceDefinition](coreapis.NodePoolCRD),
	object.Unmarshal[apiextensionsv1.CustomResourceDefinition](coreapis.NodeClaimCRD),
	object.Unmarshal[apiextensionsv1.CustomResourceDefinition](coreapis.NodeOverlayCRD),
}

// CoreCRDFiles maps the file names of CoreCRDs in core's pkg/apis/crds (and
// the chart's files/karpenter-crds) to their bytes.
var CoreCRDFiles = map[string][]byte{
	"karpenter.sh_nodepools.yaml":    coreapis.NodePoolCRD,
	"karpenter.sh_nodeclaims.yaml":   coreapis.NodeClaimCRD,
	"karpenter.sh_nodeoverlays.yaml": coreapis.NodeOverlayCRD,
}

// CRDs are all CRDs this provider needs: OwnCRDs then CoreCRDs.
var CRDs = append(append([]*apiextensionsv1.CustomResourceDefinition{}, OwnCRDs...), CoreCRDs...)

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
