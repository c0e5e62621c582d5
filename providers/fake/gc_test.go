package fake_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	fakecr "sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// The NodeClaim name tag protects instances only while the NodeClaim is
// still launching: once it recorded its instance, a second instance tagged
// with its name (a re-launch after a lost answer) is a duplicate.
func TestGarbageCollectorNameTagProtectsOnlyLaunchingNodeClaims(t *testing.T) {
	for _, tc := range []struct {
		name          string
		recordFirst   bool
		wantCollected int
	}{
		{"NodeClaim still launching keeps both", false, 0},
		{"NodeClaim with a provider ID keeps only its instance", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			f := fake.NewFleet(fake.Options{Clock: clk})
			var ids []string
			for _, token := range []string{"a", "b"} {
				res, err := f.Launch(ctx, &cloudprovider.LaunchRequest{ClientToken: token, Tags: map[string]string{cloudprovider.TagNodeClaim: "nc-1"},
					Options: []cloudprovider.LaunchOption{opt("g6.xlarge", "us-east-1a", "on-demand")}})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, res.Instance.ID)
			}
			nc := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc-1"}}
			if tc.recordFirst {
				first, _ := f.Get(ctx, ids[0])
				nc.Status.ProviderID = f.ProviderID(first)
			}
			kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(nc).Build()
			gc := orphans.NewController(f.OrphanOptions(orphans.Options{KubeClient: kube, GracePeriod: time.Minute}))
			clk.Step(2 * time.Minute)
			collected, err := gc.Collect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(collected) != tc.wantCollected {
				t.Fatalf("collected %v, want %d instance(s)", collected, tc.wantCollected)
			}
			if tc.wantCollected == 1 && collected[0] != ids[1] {
				t.Fatalf("collected %s, want the duplicate %s (the NodeClaim's own is %s)", collected[0], ids[1], ids[0])
			}
		})
	}
}
