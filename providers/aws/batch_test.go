package aws_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// TestIdenticalLaunchesAreBatched launches identical NodeClaims at once:
// one CreateFleet serves them, each NodeClaim gets its own instance tagged
// with its name, and with too little capacity the last ones are refused.
func TestIdenticalLaunchesAreBatched(t *testing.T) {
	cases := []struct {
		name     string
		claims   int
		capacity int // -1: unlimited
	}{
		{name: "three identical claims, one fleet", claims: 3, capacity: -1},
		{name: "capacity for two of three", claims: 3, capacity: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A wide window: the test must not depend on goroutine scheduling.
			e := newEnv(t, inventory(), func(o *awsbackend.Options, _ *awsbackend.RetryOptions) {
				o.BatchIdle, o.BatchMax = 500*time.Millisecond, 5*time.Second
			})
			e.resolved(nodeClass())
			only := []karpv1.NodeSelectorRequirementWithMinValues{
				req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand),
				req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g4dn.xlarge"),
				req(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, "us-east-1a"),
			}
			e.srv.SetCapacity(od("g4dn.xlarge", "us-east-1a"), tc.capacity)
			// Warm the caches so the launches reach CreateFleet together.
			if _, err := e.cp.GetInstanceTypes(e.ctx, nil); err != nil {
				t.Fatal(err)
			}
			e.launch(t, claim("warm", 1, only...))
			e.srv.SetCapacity(od("g4dn.xlarge", "us-east-1a"), lo.Ternary(tc.capacity < 0, -1, tc.capacity+1))
			e.srv.ResetRequests()
			type result struct {
				name string
				nc   *karpv1.NodeClaim
				err  error
			}
			results := make([]result, tc.claims)
			var wg sync.WaitGroup
			for i := range tc.claims {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("batch-%d", i)
					nc, err := e.cp.Create(e.ctx, claim(name, 1, only...))
					results[i] = result{name, nc, err}
				}()
			}
			wg.Wait()
			fleets := e.srv.Requests("CreateFleet")
			if len(fleets) != 1 || fleets[0].Form.Get("TargetCapacitySpecification.TotalTargetCapacity") != fmt.Sprint(tc.claims) {
				t.Fatalf("CreateFleet calls = %d (target %s), want one for %d instances", len(fleets), fleets[0].Form.Get("TargetCapacitySpecification.TotalTargetCapacity"), tc.claims)
			}
			byID := lo.SliceToMap(e.srv.Instances(), func(i fakeaws.Instance) (string, fakeaws.Instance) { return i.ID, i })
			launched := 0
			for _, r := range results {
				if r.err != nil {
					if !karpcp.IsInsufficientCapacityError(r.err) {
						t.Errorf("%s: %v, want success or insufficient capacity", r.name, r.err)
					}
					continue
				}
				launched++
				id, err := e.backend.InstanceID(r.nc.Status.ProviderID)
				if err != nil {
					t.Fatal(err)
				}
				if inst := byID[id]; inst.Tags[gpucp.TagNodeClaim] != r.name || inst.Tags["Name"] != r.name || inst.Tags[gpucp.TagCluster] != cluster {
					t.Errorf("%s launched %s tagged %v", r.name, id, inst.Tags)
				}
			}
			want := lo.Ternary(tc.capacity < 0, tc.claims, tc.capacity)
			if launched != want {
				t.Errorf("launched %d, want %d", launched, want)
			}
			if tc.capacity >= 0 && !e.cp.Unavailable().IsUnavailable("g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand) {
				t.Error("the refused offering is not marked unavailable")
			}
		})
	}
}
