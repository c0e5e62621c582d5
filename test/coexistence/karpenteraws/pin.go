//go:build tools

// Package karpenteraws pins Karpenter for AWS's API package, whose crds
// directory test/coexistence installs (see go.mod).
package karpenteraws

import _ "github.com/aws/karpenter-provider-aws/pkg/apis"
