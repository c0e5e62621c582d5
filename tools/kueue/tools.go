//go:build tools

// Package tools pins Kueue's manager for tools/build-kueue.sh.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
