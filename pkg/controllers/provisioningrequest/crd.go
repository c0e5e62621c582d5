package provisioningrequest

import (
	_ "embed"

	"github.com/awslabs/operatorpkg/object"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// The ProvisioningRequest CRD exactly as the pinned API module ships it
// (k8s.io/autoscaler/cluster-autoscaler/apis, config/crd). `go generate`
// refreshes the copy from the module cache after the pin in go.mod moves; the
// chart carries the same file (charts/karpenter-gpu/files) and
// TestCRDMatchesChart keeps the two equal.
//
//go:generate sh -c "cp \"$(go list -m -f '{{.Dir}}' k8s.io/autoscaler/cluster-autoscaler/apis)/config/crd/autoscaling.x-k8s.io_provisioningrequests.yaml\" crd/ && chmod 644 crd/*.yaml && cp crd/autoscaling.x-k8s.io_provisioningrequests.yaml ../../../charts/karpenter-gpu/files/"

//go:embed crd/autoscaling.x-k8s.io_provisioningrequests.yaml
var crdYAML []byte

// CRDName is the ProvisioningRequest CRD's name.
const CRDName = "provisioningrequests.autoscaling.x-k8s.io"

// CRD returns the ProvisioningRequest CustomResourceDefinition, for clusters
// (and test environments) that do not have it yet.
func CRD() *apiextensionsv1.CustomResourceDefinition {
	return object.Unmarshal[apiextensionsv1.CustomResourceDefinition](crdYAML)
}
