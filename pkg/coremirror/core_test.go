package coremirror_test

import (
	"runtime/debug"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/coremirror"
)

// core.go mirrors code Karpenter core keeps unexported; an upgrade of core
// fails here until core.go is re-read against the new release and
// CoreVersion moved to it.
func TestCoreMirrorsTheLinkedKarpenter(t *testing.T) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	for _, dep := range info.Deps {
		if dep.Path != "sigs.k8s.io/karpenter" {
			continue
		}
		version := dep.Version
		if dep.Replace != nil {
			version = dep.Replace.Version
		}
		if version != coremirror.CoreVersion {
			t.Fatalf("linked against Karpenter core %s, core.go mirrors %s: re-read pkg/coremirror/core.go against %s", version, coremirror.CoreVersion, version)
		}
		return
	}
	t.Fatal("sigs.k8s.io/karpenter is not a dependency of the test binary")
}
