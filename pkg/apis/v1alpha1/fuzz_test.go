package v1alpha1_test

import (
	"encoding/json"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// gpuNodeClassSeeds are GPUNodeClass documents the fuzzers start from (also
// in testdata/fuzz): a full spec, an empty one, and the edge values the
// defaulting helpers special-case.
var gpuNodeClassSeeds = []string{
	`{"apiVersion":"karpenter-gpu.io/v1alpha1","kind":"GPUNodeClass","metadata":{"name":"gpu"},"spec":{"role":"r","amiFamily":"Bottlerocket",` +
		`"subnetSelectorTerms":[{"tags":{"k":"v"}}],"securityGroupSelectorTerms":[{"id":"sg-1"}],"userData":"#!/bin/bash\necho hi",` +
		`"tags":{"team":"ml"},"metadataOptions":{"httpTokens":"optional","httpPutResponseHopLimit":2},` +
		`"blockDeviceMappings":[{"deviceName":"/dev/xvda","ebs":{"volumeSize":"500Gi","volumeType":"gp3","encrypted":true}}],` +
		`"gpu":{"idleAfter":"30m","startupTimeout":"5m","taint":false,"timeSlicing":{"replicas":4},"migStrategy":"mixed","disruption":{"protectRunningGPUPods":false}}}}`,
	`{}`,
	`{"spec":{"gpu":{"idleAfter":"Never","startupTimeout":"0s","timeSlicing":{"replicas":-3}}}}`,
	`{"spec":{"gpu":{"idleAfter":null,"startupTimeout":"-1h"},"metadataOptions":{"httpTokens":""}}}`,
	`{"spec":{"gpu":{"timeSlicing":null,"disruption":{}},"metadataOptions":{}}}`,
	`{"spec":{"gpu":{"idleAfter":"1h30m"}}}`,
}

// FuzzGPUNodeClassDefaults decodes arbitrary JSON into a GPUNodeClass (as
// the API server's or a client's decoder would) and calls every defaulting
// helper: none may panic, and each must return a usable value.
func FuzzGPUNodeClassDefaults(f *testing.F) {
	for _, s := range gpuNodeClassSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nc := &v1alpha1.GPUNodeClass{}
		if err := json.Unmarshal(data, nc); err != nil {
			return
		}
		if fam := nc.AMIFamilyOrDefault(); fam == "" {
			t.Error("AMIFamilyOrDefault returned empty")
		}
		if d, ok := nc.IdleAfter(); ok && nc.Spec.GPU.IdleAfter == nil && d != v1alpha1.DefaultIdleAfter {
			t.Errorf("IdleAfter unset = %s, want the default", d)
		}
		if st := nc.StartupTimeout(); st <= 0 {
			t.Errorf("StartupTimeout = %s, want > 0", st)
		}
		_ = nc.GPUTaintEnabled()
		if r := nc.TimeSlicingReplicas(); r < 1 {
			t.Errorf("TimeSlicingReplicas = %d, want >= 1", r)
		}
		if nc.MIGStrategy() == "" || nc.HTTPTokens() == "" {
			t.Error("MIGStrategy or HTTPTokens returned empty")
		}
		if mode, _ := nc.GPUWorkProtection(); mode == "" {
			t.Error("GPUWorkProtection returned no mode")
		}
		_ = nc.HTTPPutResponseHopLimit()
		_ = nc.StatusConditions().Root()
		_ = nc.GetConditions()
		c := nc.DeepCopy()
		if _, err := json.Marshal(c); err != nil {
			t.Errorf("a decoded GPUNodeClass does not encode again: %v", err)
		}
	})
}
