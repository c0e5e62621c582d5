package aws_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// policyActions reads iam-policy.json.
func policyActions(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Sid    string
			Effect string
			Action json.RawMessage
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("iam-policy.json is not valid JSON: %v", err)
	}
	var out []string
	for _, s := range doc.Statement {
		if s.Effect != "Allow" || s.Sid == "" {
			t.Errorf("statement %q: effect %s; every statement must be a named Allow", s.Sid, s.Effect)
		}
		var one string
		var many []string
		if json.Unmarshal(s.Action, &one) == nil {
			many = []string{one}
		} else if err := json.Unmarshal(s.Action, &many); err != nil {
			t.Fatal(err)
		}
		out = append(out, many...)
	}
	return lo.Uniq(out)
}

// TestIAMPolicyCoversEveryCallAndNoMore drives every code path (resolve
// with a managed instance profile, offerings with prices and reservations,
// on-demand/spot/reserved launches, get, list, terminate, orphan
// collection), records the API actions the SDK clients sent, and checks the
// policy allows each and grants nothing the code never calls (apart from
// actions EC2/IAM authorize implicitly with a call).
func TestIAMPolicyCoversEveryCallAndNoMore(t *testing.T) {
	e := newEnv(t, inventory())
	e.resolved(nodeClass())
	other := nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Name = "existing-profile"
		nc.Spec.Role = ""
		nc.Spec.InstanceProfile = lo.ToPtr(e.srv.InstanceProfiles()[lo.Keys(e.srv.InstanceProfiles())[0]].Name)
	})
	if err := e.backend.Resolve(e.ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.backend.Offerings(e.ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*karpv1.NodeClaim{
		claim("a", 1),
		claim("b", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeSpot)),
		claim("c", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)),
	} {
		nc, err := e.cp.Create(e.ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.cp.Get(e.ctx, nc.Status.ProviderID); err != nil {
			t.Fatal(err)
		}
		if c.Name == "a" {
			if err := e.cp.Delete(e.ctx, nc); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A gang of EFA-capable types: its placement group, then, an hour
	// later, the collection of the empty group before the next gang.
	for _, uid := range []string{"gang-1", "gang-2"} {
		var claims []*karpv1.NodeClaim
		for i := range 2 {
			claims = append(claims, gangClaim(fmt.Sprintf("%s-%d", uid, i), uid, 2, "p5.48xlarge", "us-east-1b"))
		}
		for _, r := range e.createAll(claims) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			if err := e.cp.Delete(e.ctx, r.nc); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if _, err := e.backend.List(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.Step(time.Hour)
	}
	if _, err := e.collectOrphans(time.Minute); err != nil {
		t.Fatal(err)
	}
	used := lo.Uniq(lo.Map(e.srv.Requests(""), func(r fakeaws.Request, _ int) string { return r.Service + ":" + r.Action }))
	sort.Strings(used)
	allowed := policyActions(t)
	for _, a := range used {
		if !lo.Contains(allowed, a) {
			t.Errorf("the code calls %s, which iam-policy.json does not allow", a)
		}
	}
	// Authorized implicitly with another call: CreateFleet launches through
	// RunInstances and tags at creation, launching with an instance profile
	// passes its role, creating a tagged profile tags it. RemoveRoleFrom-
	// InstanceProfile repairs a profile whose role changed.
	implicit := []string{"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "iam:TagInstanceProfile", "iam:RemoveRoleFromInstanceProfile"}
	for _, a := range allowed {
		if !lo.Contains(used, a) && !lo.Contains(implicit, a) {
			t.Errorf("iam-policy.json allows %s, which the code never calls", a)
		}
	}
}
