package cloudprovider_test

import (
	"testing"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

func TestGangPlacementGroup(t *testing.T) {
	efa := func(it string) bool { return it == "p5.48xlarge" || it == "p4d.24xlarge" }
	class := func(strategy string, name *string) *v1alpha1.GPUNodeClass {
		nc := &v1alpha1.GPUNodeClass{}
		nc.Spec.Gang = v1alpha1.GangOptions{PlacementGroup: strategy, PlacementGroupName: name}
		return nc
	}
	for _, tc := range []struct {
		name       string
		nodeClass  *v1alpha1.GPUNodeClass
		types      []string
		want       string
		wantCreate bool
	}{
		{"EFA types get a group of the backend's own", class(v1alpha1.GangPlacementCluster, nil), []string{"p5.48xlarge", "p4d.24xlarge"}, "", true},
		{"the default strategy is Cluster", class("", nil), []string{"p5.48xlarge"}, "", true},
		{"no node class: the default", nil, []string{"p5.48xlarge"}, "", true},
		{"one type without EFA: no group", class(v1alpha1.GangPlacementCluster, nil), []string{"p5.48xlarge", "g6.xlarge"}, "", false},
		{"no types: no group", class(v1alpha1.GangPlacementCluster, nil), nil, "", false},
		{"None: no group even for EFA types", class(v1alpha1.GangPlacementNone, nil), []string{"p5.48xlarge"}, "", false},
		{"the node class's own group, whatever the types", class(v1alpha1.GangPlacementCluster, lo.ToPtr("team-pg")), []string{"g6.xlarge"}, "team-pg", false},
		{"an empty name is no name", class(v1alpha1.GangPlacementCluster, lo.ToPtr("")), []string{"p5.48xlarge"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, create := gpucp.GangPlacementGroup(tc.nodeClass, tc.types, efa)
			if got != tc.want || create != tc.wantCreate {
				t.Fatalf("GangPlacementGroup = %q, create %v; want %q, create %v", got, create, tc.want, tc.wantCreate)
			}
		})
	}
}
