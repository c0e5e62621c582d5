//go:build tools

// Package codegen pins controller-gen, which generates the deepcopy functions
// and CRD of pkg/apis. It is a separate module so that controller-tools'
// dependencies never enter the product's dependency graph.
package codegen

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
