package cloudprovider_test

import (
	"encoding/json"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// FuzzNodeClassHash decodes arbitrary JSON into a GPUNodeClass and hashes
// its launch-relevant spec (the drift annotation): it must not panic, must be
// deterministic, must not depend on status or metadata, and must not embed
// the user data (the hash is written to NodeClaim annotations, which many
// can read).
func FuzzNodeClassHash(f *testing.F) {
	f.Add([]byte(`{"spec":{"role":"r","userData":"#!/bin/bash\necho secret-token-123","tags":{"a":"b"},"gpu":{"idleAfter":"Never"}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"metadata":{"name":"x","generation":7},"status":{"conditions":[{"type":"Ready","status":"True"}]},"spec":{"amiSelectorTerms":[{"alias":"al2023@latest"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nc := &v1alpha1.GPUNodeClass{}
		if err := json.Unmarshal(data, nc); err != nil {
			return
		}
		h := cloudprovider.NodeClassHash(nc)
		if h == "" {
			t.Fatal("empty hash")
		}
		other := nc.DeepCopy()
		other.Name, other.Generation, other.Status = "renamed", nc.Generation+1, v1alpha1.GPUNodeClassStatus{}
		if h2 := cloudprovider.NodeClassHash(other); h2 != h {
			t.Errorf("hash depends on metadata or status: %q vs %q", h, h2)
		}
		if ud := nc.Spec.UserData; ud != nil && len(*ud) >= 8 && contains(h, *ud) {
			t.Errorf("the hash %q embeds the user data", h)
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
