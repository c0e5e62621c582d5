package catalog_test

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// FuzzParse checks that no input makes Parse (or building instance types
// from what it accepts) panic, and that accepted entries hold the facts the
// builder relies on.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("data/aws-accelerated-instances.csv"); err == nil {
		f.Add(string(data))
	}
	f.Add(header + "\n" + goodRow + "\n")
	f.Add(header + "\n")
	f.Add("")
	f.Add(header + "\n" + strings.Replace(goodRow, ",4,", `,"4""",`, 1))
	f.Add(header + "\n" + strings.Replace(goodRow, "0.804800", "1e308", 1))
	f.Add(header + "\n" + strings.Replace(goodRow, ",58,", ",99999999999999999999,", 1))
	f.Add("instance_type\nfoo\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, excluded, err := catalog.Parse(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		for _, x := range excluded {
			if x.Reason == "" {
				t.Fatalf("exclusion of %q without reason", x.Name)
			}
		}
		for _, e := range entries {
			if e.Name == "" || e.VCPU <= 0 || e.MemoryMiB <= 0 || e.MaxPods <= 0 {
				t.Fatalf("incomplete entry accepted: %+v", e)
			}
		}
		types, _ := catalog.NewInstanceTypes(entries, catalog.Options{
			Region: "us-east-1", Zones: []string{"z1"}, TimeSlicingReplicas: 2,
		})
		for _, it := range types {
			_ = it.Allocatable()[corev1.ResourceMemory]
			for _, o := range it.Offerings {
				if !(o.Price > 0) {
					t.Fatalf("%s priced %v", it.Name, o.Price)
				}
			}
		}
	})
}
