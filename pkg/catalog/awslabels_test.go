package catalog_test

import (
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// TestKarpenterAWSLabels checks the Karpenter-AWS well-known labels of a
// few types against the values Karpenter-AWS's instance-type reference gives
// them (GPU by name, count, make and memory per GPU; Neuron as an
// accelerator; Habana Gaudi as an EC2 GPU), and that the labels it cannot
// state are DoesNotExist on every type.
func TestKarpenterAWSLabels(t *testing.T) {
	types, _ := build(t, defaultOptions())
	want := map[string]map[string]string{
		"g6e.12xlarge": {
			v1alpha1.AWSLabelInstanceCategory: "g", v1alpha1.AWSLabelInstanceFamily: "g6e", v1alpha1.AWSLabelInstanceGeneration: "6",
			v1alpha1.AWSLabelInstanceSize: "12xlarge", v1alpha1.AWSLabelInstanceCPU: "48", v1alpha1.AWSLabelInstanceMemory: "393216",
			v1alpha1.AWSLabelInstanceLocalNVMe: "3800", v1alpha1.AWSLabelInstanceNetwork: "100000", v1alpha1.AWSLabelInstanceCapabilityFlex: "false",
			v1alpha1.AWSLabelInstanceGPUName: "l40s", v1alpha1.AWSLabelInstanceGPUManufacture: "nvidia",
			v1alpha1.AWSLabelInstanceGPUCount: "4", v1alpha1.AWSLabelInstanceGPUMemory: "45776",
		},
		"g4dn.xlarge": {
			v1alpha1.AWSLabelInstanceCategory: "g", v1alpha1.AWSLabelInstanceGeneration: "4", v1alpha1.AWSLabelInstanceFamily: "g4dn",
			v1alpha1.AWSLabelInstanceGPUName: "t4", v1alpha1.AWSLabelInstanceGPUCount: "1", v1alpha1.AWSLabelInstanceGPUMemory: "16384",
		},
		"p5.48xlarge": {
			v1alpha1.AWSLabelInstanceCategory: "p", v1alpha1.AWSLabelInstanceGeneration: "5",
			v1alpha1.AWSLabelInstanceGPUName: "h100", v1alpha1.AWSLabelInstanceGPUCount: "8", v1alpha1.AWSLabelInstanceGPUMemory: "81920",
		},
		"g4ad.xlarge": {v1alpha1.AWSLabelInstanceGPUName: "radeon-pro-v520", v1alpha1.AWSLabelInstanceGPUManufacture: "amd"},
		"dl1.24xlarge": {
			v1alpha1.AWSLabelInstanceCategory: "dl", v1alpha1.AWSLabelInstanceGeneration: "1",
			v1alpha1.AWSLabelInstanceGPUName: "gaudi-hl-205", v1alpha1.AWSLabelInstanceGPUManufacture: "habana", v1alpha1.AWSLabelInstanceGPUCount: "8",
		},
		"inf2.xlarge": {
			v1alpha1.AWSLabelInstanceCategory: "inf", v1alpha1.AWSLabelInstanceGeneration: "2",
			v1alpha1.AWSLabelAcceleratorName: "inferentia2", v1alpha1.AWSLabelAcceleratorManufacture: "aws", v1alpha1.AWSLabelAcceleratorCount: "1",
		},
		"trn1n.32xlarge": {
			v1alpha1.AWSLabelInstanceCategory: "trn", v1alpha1.AWSLabelInstanceGeneration: "1", v1alpha1.AWSLabelInstanceFamily: "trn1n",
			v1alpha1.AWSLabelAcceleratorName: "trainium", v1alpha1.AWSLabelAcceleratorCount: "16",
		},
	}
	for name, labels := range want {
		it, ok := types[name]
		if !ok {
			t.Fatalf("%s not in the catalog", name)
		}
		for key, value := range labels {
			if got := label(t, it, key); got != value {
				t.Errorf("%s: %s = %q, want %q", name, key, got, value)
			}
		}
	}
	doesNotExist := func(name, key string) {
		t.Helper()
		if op := types[name].Requirements.Get(key).Operator(); op != corev1.NodeSelectorOpDoesNotExist {
			t.Errorf("%s: %s is %s, want DoesNotExist", name, key, op)
		}
	}
	// Neuron types are no GPUs, GPU types no accelerators.
	for _, key := range []string{v1alpha1.AWSLabelInstanceGPUName, v1alpha1.AWSLabelInstanceGPUCount, v1alpha1.AWSLabelInstanceGPUMemory} {
		doesNotExist("inf2.xlarge", key)
	}
	doesNotExist("g6e.12xlarge", v1alpha1.AWSLabelAcceleratorName)
	// Gaudi's memory is stated as an EC2 GPU's.
	if got := label(t, types["dl1.24xlarge"], v1alpha1.AWSLabelInstanceGPUMemory); got != "32768" {
		t.Errorf("dl1.24xlarge gpu memory %q", got)
	}
	for name := range types {
		for _, key := range v1alpha1.AWSUnstatedLabels {
			doesNotExist(name, key)
		}
		for _, key := range v1alpha1.AWSLabels {
			if !types[name].Requirements.Has(key) {
				t.Errorf("%s: %s undefined", name, key)
			}
			if !karpv1.WellKnownLabels.Has(key) {
				t.Errorf("%s is not registered as well known", key)
			}
		}
	}
	// A pod written for Karpenter-AWS selects the same types as one using
	// karpenter-gpu's labels.
	for name, it := range types {
		byAWS := compatible(it, req(v1alpha1.AWSLabelInstanceGPUName, corev1.NodeSelectorOpIn, "l4"))
		byGPU := compatible(it, req(v1alpha1.LabelGPUName, corev1.NodeSelectorOpIn, "l4"))
		if byAWS != byGPU {
			t.Errorf("%s: instance-gpu-name l4 selects %v, gpu-name l4 selects %v", name, byAWS, byGPU)
		}
		count := int64(0)
		if r := it.Requirements.Get(v1alpha1.AWSLabelInstanceGPUCount); r.Operator() == corev1.NodeSelectorOpIn {
			count, _ = strconv.ParseInt(r.Any(), 10, 64)
		}
		if got := compatible(it, req(v1alpha1.AWSLabelInstanceGPUCount, corev1.NodeSelectorOpGt, "3")); got != (count > 3) {
			t.Errorf("%s: instance-gpu-count Gt 3 selects it: %v, with %d GPUs", name, got, count)
		}
	}
}
