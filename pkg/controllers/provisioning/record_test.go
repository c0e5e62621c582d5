package provisioning_test

import (
	"strings"
	"testing"
	"time"
)

// Record leaves in cluster state what deciding again on unchanged inputs
// leaves: once the nominations of the in-flight nodes the pending pods wait
// for have lapsed, recording the earlier decision nominates exactly those
// nodes again, and a fresh decision places the pods where the recorded one
// did. Both ways of deciding: core's Schedule and the direct path.
func TestRecordNominatesAsDecidingAgain(t *testing.T) {
	for _, tc := range []struct {
		name          string
		directMinPods int
		pods          int
	}{
		{"core's Schedule", -1, 6},
		{"direct path", 0, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, gpuPool("gpu", 0))
			e.addPods(t, burst(e, tc.pods, 5)...)
			c := e.controller(tc.directMinPods)
			first, err := c.Schedule(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(first.NewNodeClaims) == 0 {
				t.Fatal("the first decision launched nothing")
			}
			e.launch(t, first)
			waiting, err := c.Schedule(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(waiting.NewNodeClaims) != 0 || len(onExisting(waiting)) != tc.pods {
				t.Fatalf("second decision: %d new NodeClaims, %d of %d pods on in-flight nodes", len(waiting.NewNodeClaims), len(onExisting(waiting)), tc.pods)
			}
			nominated := func() (yes, no int) {
				for _, n := range waiting.ExistingNodes {
					if e.cluster.IsNodeNominated(n.ProviderID()) {
						yes++
					} else {
						no++
					}
				}
				return yes, no
			}
			if yes, no := nominated(); no != 0 {
				t.Fatalf("deciding nominated %d of %d in-flight nodes", yes, yes+no)
			}
			e.clk.Step(time.Hour)
			if yes, _ := nominated(); yes != 0 {
				t.Fatalf("%d nominations outlived an hour", yes)
			}
			c.Record(e.ctx, waiting)
			if yes, no := nominated(); no != 0 {
				t.Errorf("recording nominated %d of %d in-flight nodes", yes, yes+no)
			}
			again, err := c.Schedule(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := onExisting(again), onExisting(waiting); strings.Join(a, ",") != strings.Join(b, ",") || len(again.NewNodeClaims) != 0 {
				t.Errorf("deciding again differs from the recorded decision:\nagain    %v (+%d NodeClaims)\nrecorded %v", a, len(again.NewNodeClaims), b)
			}
		})
	}
}
