// Package v1alpha1 holds the karpenter-gpu.io/v1alpha1 API: the GPUNodeClass,
// which describes how GPU (and other accelerator) instances are launched, and
// the well-known node labels this provider registers with Karpenter.
//
// Importing the package registers its types into client-go's global
// scheme.Scheme, which is the scheme Karpenter's operator builds its manager on.
//
// +k8s:deepcopy-gen=package
// +groupName=karpenter-gpu.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// Version is the API version of this package.
const Version = "v1alpha1"

var (
	// SchemeGroupVersion is karpenter-gpu.io/v1alpha1.
	SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}
	// SchemeBuilder adds this package's types to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the GroupResource of a resource in this group.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&GPUNodeClass{},
		&GPUNodeClassList{},
	)
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}

func init() {
	if err := AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}
