package provisioningrequest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

const atomic = autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp

// The attempt state machine, with the NodeClaim lifecycle played by the
// test: each case launches a 4-node gang and does something to it.
func TestAtomicAttempts(t *testing.T) {
	tests := []struct {
		name string
		// act runs after the first reconcile created the gang; it returns
		// how far to step the clock before the next reconcile.
		act           func(t *testing.T, e *env, claims []karpv1.NodeClaim) time.Duration
		wantProvision metav1.ConditionStatus
		wantReason    string
		wantMessage   string
		wantClaims    int
		wantFailed    bool
	}{
		{name: "all register: Provisioned, held",
			act: func(t *testing.T, e *env, c []karpv1.NodeClaim) time.Duration {
				e.register(t, c...)
				return 0
			},
			wantProvision: metav1.ConditionTrue, wantReason: pr.ReasonCapacityIsProvisioned, wantClaims: 4},
		{name: "three of four registered: still provisioning",
			act: func(t *testing.T, e *env, c []karpv1.NodeClaim) time.Duration {
				e.register(t, c[:3]...)
				return time.Minute
			},
			wantProvision: metav1.ConditionFalse, wantReason: pr.ReasonProvisioning, wantClaims: 4},
		{name: "one refused (core deleted it): rolled back, retry scheduled",
			act: func(t *testing.T, e *env, c []karpv1.NodeClaim) time.Duration {
				e.register(t, c[:2]...)
				e.must(t, e.kube.Delete(e.ctx, &c[3]))
				return 20 * time.Second
			},
			wantProvision: metav1.ConditionFalse, wantReason: pr.ReasonCapacityIsNotFound, wantMessage: "was deleted before it registered", wantClaims: 0},
		{name: "not registered within the launch timeout: rolled back",
			act: func(t *testing.T, e *env, c []karpv1.NodeClaim) time.Duration {
				e.register(t, c[:3]...)
				return 5*time.Minute + time.Second
			},
			wantProvision: metav1.ConditionFalse, wantReason: pr.ReasonCapacityIsNotFound, wantMessage: "3 of 4 nodes registered within 5m0s", wantClaims: 0},
		{name: "deleted before the grace: still in flight (informer lag)",
			act: func(t *testing.T, e *env, c []karpv1.NodeClaim) time.Duration {
				e.must(t, e.kube.Delete(e.ctx, &c[0]))
				return time.Second
			},
			wantProvision: metav1.ConditionFalse, wantReason: pr.ReasonProvisioning, wantClaims: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, pr.Options{LaunchTimeout: 5 * time.Minute, MaxAttempts: 3})
			req := e.request(t, atomic, 8, 4)
			req = e.reconcile(t, req)
			claims := e.claims(t, req)
			if len(claims) != 4 {
				t.Fatalf("%d NodeClaims, want 4", len(claims))
			}
			zone := string(req.Status.ProvisioningClassDetails[pr.DetailZone])
			recorded := lo.Compact(strings.Split(string(req.Status.ProvisioningClassDetails[pr.DetailNodeClaims]), ","))
			if got := cond(req, autoscalingv1.Provisioned); got.Reason != pr.ReasonProvisioning || len(recorded) != 4 {
				t.Fatalf("attempt 1 recorded %v, Provisioned %s %q; want its 4 NodeClaims and the launch reported", recorded, got.Reason, got.Message)
			}
			for _, c := range claims {
				if c.Annotations[karpv1.DoNotDisruptAnnotationKey] != "true" || c.Labels[pr.LabelAttempt] != "1" {
					t.Errorf("NodeClaim %s not held for attempt 1: %v %v", c.Name, c.Labels, c.Annotations)
				}
				if !lo.Contains(recorded, c.Name) {
					t.Errorf("NodeClaim %s not recorded by its attempt (%v)", c.Name, recorded)
				}
				zoneReq, _ := lo.Find(c.Spec.Requirements, func(r karpv1.NodeSelectorRequirementWithMinValues) bool { return r.Key == corev1.LabelTopologyZone })
				if len(zoneReq.Values) != 1 || zoneReq.Values[0] != zone {
					t.Errorf("NodeClaim %s zone requirement %v, want [%s]", c.Name, zoneReq.Values, zone)
				}
			}
			e.clk.Step(tt.act(t, e, claims))
			req = e.reconcile(t, req)
			got := cond(req, autoscalingv1.Provisioned)
			if got.Status != tt.wantProvision || got.Reason != tt.wantReason || !strings.Contains(got.Message, tt.wantMessage) {
				t.Errorf("Provisioned = %s/%s %q, want %s/%s containing %q", got.Status, got.Reason, got.Message, tt.wantProvision, tt.wantReason, tt.wantMessage)
			}
			if n := len(e.claims(t, req)); n != tt.wantClaims {
				t.Errorf("%d NodeClaims left, want %d", n, tt.wantClaims)
			}
			if failed := cond(req, autoscalingv1.Failed).Status == metav1.ConditionTrue; failed != tt.wantFailed {
				t.Errorf("Failed = %v, want %v", failed, tt.wantFailed)
			}
		})
	}
}

// Retries back off (30 s, 60 s) and the last failure fails the request.
func TestAtomicRetriesThenFails(t *testing.T) {
	e := newEnv(t, pr.Options{MaxAttempts: 3})
	req := e.request(t, atomic, 8, 4)
	for attempt := 1; attempt <= 3; attempt++ {
		req = e.reconcile(t, req)
		claims := e.claims(t, req)
		if len(claims) != 4 || claims[0].Labels[pr.LabelAttempt] != fmt.Sprint(attempt) {
			t.Fatalf("attempt %d: %d NodeClaims", attempt, len(claims))
		}
		e.must(t, e.kube.Delete(e.ctx, &claims[0]))
		e.clk.Step(20 * time.Second)
		req = e.reconcile(t, req)
		if attempt < 3 {
			after, err := time.Parse(time.RFC3339Nano, string(req.Status.ProvisioningClassDetails[pr.DetailRetryAfter]))
			e.must(t, err)
			wait, base := after.Sub(e.clk.Now()), pr.Backoff(pr.DefaultRetryBackoff, attempt)
			if wait < base || wait > base+base/5+time.Second {
				t.Fatalf("attempt %d: retry in %s, want %s plus at most a fifth", attempt, wait, base)
			}
			if msg := cond(req, autoscalingv1.Provisioned).Message; !strings.Contains(msg, "retrying in "+wait.String()) {
				t.Fatalf("attempt %d: %q does not say retrying in %s", attempt, msg, wait)
			}
			e.clk.Step(wait - time.Second)
			if req = e.reconcile(t, req); len(e.claims(t, req)) != 0 {
				t.Fatalf("attempt %d: launched within the backoff", attempt)
			}
			e.clk.Step(2 * time.Second)
		}
	}
	if c := cond(req, autoscalingv1.Failed); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "attempt 3 of 3") {
		t.Fatalf("Failed = %+v", c)
	}
	if req = e.reconcile(t, req); len(e.claims(t, req)) != 0 {
		t.Fatal("a failed request launched again")
	}
}

// The booking: held until the pods bind, or BookingExpired, or revoked.
func TestBooking(t *testing.T) {
	tests := []struct {
		name        string
		act         func(t *testing.T, e *env, req *autoscalingv1.ProvisioningRequest, claims []karpv1.NodeClaim) time.Duration
		wantBooking string
		wantCond    string // condition that must be True, "" for none
	}{
		{name: "pods bound: released without expiry", wantBooking: pr.BookingConsumed,
			act: func(t *testing.T, e *env, req *autoscalingv1.ProvisioningRequest, c []karpv1.NodeClaim) time.Duration {
				for i := range c {
					e.must(t, e.kube.Create(e.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", i), Namespace: "default",
						Annotations: map[string]string{autoscalingv1.ProvisioningRequestPodAnnotationKey: req.Name}},
						Spec: corev1.PodSpec{NodeName: "node-" + c[i].Name, Containers: []corev1.Container{{Name: "w", Image: "x"}}}}))
				}
				return time.Minute
			}},
		{name: "half the pods bound, booking time over: BookingExpired", wantBooking: pr.BookingExpired, wantCond: autoscalingv1.BookingExpired,
			act: func(t *testing.T, e *env, req *autoscalingv1.ProvisioningRequest, c []karpv1.NodeClaim) time.Duration {
				for i := range c[:2] {
					e.must(t, e.kube.Create(e.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", i), Namespace: "default",
						Annotations: map[string]string{autoscalingv1.ProvisioningRequestPodAnnotationKey: req.Name}},
						Spec: corev1.PodSpec{NodeName: "node-" + c[i].Name, Containers: []corev1.Container{{Name: "w", Image: "x"}}}}))
				}
				return 10*time.Minute + time.Second
			}},
		{name: "within the booking time: held", wantBooking: pr.BookingHeld,
			act: func(*testing.T, *env, *autoscalingv1.ProvisioningRequest, []karpv1.NodeClaim) time.Duration {
				return 9 * time.Minute
			}},
		{name: "a booked node deleted: CapacityRevoked", wantBooking: pr.BookingRevoked, wantCond: autoscalingv1.CapacityRevoked,
			act: func(t *testing.T, e *env, _ *autoscalingv1.ProvisioningRequest, c []karpv1.NodeClaim) time.Duration {
				e.must(t, e.kube.Delete(e.ctx, &c[1]))
				return time.Minute
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, pr.Options{})
			req := e.request(t, atomic, 8, 4)
			req = e.reconcile(t, req)
			e.register(t, e.claims(t, req)...)
			req = e.reconcile(t, req)
			if cond(req, autoscalingv1.Provisioned).Status != metav1.ConditionTrue {
				t.Fatalf("not provisioned: %+v", req.Status.Conditions)
			}
			e.clk.Step(tt.act(t, e, req, e.claims(t, req)))
			req = e.reconcile(t, req)
			if got := string(req.Status.ProvisioningClassDetails[pr.DetailBooking]); got != tt.wantBooking {
				t.Errorf("booking %q, want %q", got, tt.wantBooking)
			}
			for _, typ := range []string{autoscalingv1.BookingExpired, autoscalingv1.CapacityRevoked} {
				if isTrue := cond(req, typ).Status == metav1.ConditionTrue; isTrue != (typ == tt.wantCond) {
					t.Errorf("%s = %v, want %v", typ, isTrue, typ == tt.wantCond)
				}
			}
			held := lo.CountBy(e.claims(t, req), func(c karpv1.NodeClaim) bool { return c.Annotations[karpv1.DoNotDisruptAnnotationKey] == "true" })
			if wantHeld := tt.wantBooking == pr.BookingHeld; (held > 0) != wantHeld {
				t.Errorf("%d NodeClaims still held, want held=%v", held, wantHeld)
			}
		})
	}
}

// Planning figures: how long the packer takes to plan a gang over the
// catalog in every zone (reported with -v; designs/gang.md).
func TestPlanFigures(t *testing.T) {
	e := newEnv(t, pr.Options{})
	for _, tt := range []struct {
		name      string
		gpus      int64
		pods      int
		wantNodes int
	}{
		{"4 x 8-GPU workers", 8, 4, 4},
		{"64 x 8-GPU workers", 8, 64, 64},
		{"512 x 1-GPU workers", 1, 512, 0},
	} {
		req := e.request(t, atomic, tt.gpus, 1)
		tmpl := &corev1.PodTemplate{}
		e.must(t, e.kube.Get(e.ctx, types.NamespacedName{Namespace: "default", Name: req.Spec.PodSets[0].PodTemplateRef.Name}, tmpl))
		pods := make([]*corev1.Pod, tt.pods)
		for i := range pods {
			pods[i] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: "default", UID: types.UID(fmt.Sprintf("u-%d", i))},
				Spec: *tmpl.Template.Spec.DeepCopy()}
		}
		start := time.Now()
		plan, why, err := e.ctrl.PlanAtomic(e.ctx, pods)
		took := time.Since(start)
		if err != nil || plan == nil {
			t.Fatalf("%s: plan %v, %q, %v", tt.name, plan, why, err)
		}
		if tt.wantNodes > 0 && len(plan.NodeClaims) != tt.wantNodes {
			t.Errorf("%s: %d nodes, want %d", tt.name, len(plan.NodeClaims), tt.wantNodes)
		}
		if placed := lo.SumBy(plan.NodeClaims, func(n *scheduling.NodeClaim) int { return len(n.Pods) }); placed != tt.pods {
			t.Errorf("%s: %d pods placed, want %d", tt.name, placed, tt.pods)
		}
		for _, n := range plan.NodeClaims {
			if z := n.Requirements.Get(corev1.LabelTopologyZone).Values(); len(z) != 1 || z[0] != plan.Zone {
				t.Errorf("%s: a node in %v, plan zone %s", tt.name, z, plan.Zone)
			}
		}
		t.Logf("%s: %d nodes in %s, $%.2f/h, planned in %s", tt.name, len(plan.NodeClaims), plan.Zone, plan.Cost, took.Round(time.Millisecond))
	}
}

// check-capacity answers from existing nodes with core's scheduler and
// launches nothing.
func TestCheckCapacity(t *testing.T) {
	e := newEnv(t, pr.Options{})
	// One existing 8-GPU node: room for two 4-GPU workers.
	nc, node := test.NodeClaimAndNode(karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{corev1.LabelTopologyZone: "us-east-1a", corev1.LabelInstanceTypeStable: "p4d.24xlarge",
			karpv1.CapacityTypeLabelKey: karpv1.CapacityTypeOnDemand, karpv1.NodePoolLabelKey: "gpu", corev1.LabelArchStable: "amd64"}},
		Status: karpv1.NodeClaimStatus{ProviderID: "fake:///existing",
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("96"), corev1.ResourceMemory: resource.MustParse("1000Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8"), corev1.ResourcePods: resource.MustParse("110")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("95"), corev1.ResourceMemory: resource.MustParse("990Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8"), corev1.ResourcePods: resource.MustParse("110")}},
	})
	nc.StatusConditions().SetTrue(karpv1.ConditionTypeLaunched)
	nc.StatusConditions().SetTrue(karpv1.ConditionTypeRegistered)
	nc.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
	node.Spec.Taints = nil // registered: no karpenter.sh/unregistered taint
	node.Labels[karpv1.NodeInitializedLabelKey] = "true"
	node.Labels[karpv1.NodeRegisteredLabelKey] = "true"
	e.must(t, e.kube.Create(e.ctx, nc))
	e.must(t, e.kube.Create(e.ctx, node))
	e.cluster.UpdateNodeClaim(nc)
	e.must(t, e.cluster.UpdateNode(e.ctx, node))
	for _, tt := range []struct {
		count      int32
		want       metav1.ConditionStatus
		wantReason string
		wantMsg    string
	}{
		{2, metav1.ConditionTrue, pr.ReasonCapacityIsFound, "Capacity is found"},
		{3, metav1.ConditionFalse, pr.ReasonCapacityIsNotFound, "2 of 3 pods fit"},
	} {
		req := e.reconcile(t, e.request(t, autoscalingv1.ProvisioningClassCheckCapacity, 4, tt.count))
		c := cond(req, autoscalingv1.Provisioned)
		if c.Status != tt.want || c.Reason != tt.wantReason || !strings.Contains(c.Message, tt.wantMsg) {
			t.Errorf("%d pods: Provisioned %s/%s %q, want %s/%s containing %q", tt.count, c.Status, c.Reason, c.Message, tt.want, tt.wantReason, tt.wantMsg)
		}
	}
	list := &karpv1.NodeClaimList{}
	e.must(t, e.kube.List(e.ctx, list))
	if len(list.Items) != 1 {
		t.Errorf("%d NodeClaims after check-capacity, want the 1 existing", len(list.Items))
	}
}

// Nothing of a request runs while no attempt is in flight: a NodeClaim of
// it that the rollback missed (the informer cache had not listed it yet, or
// an interrupted attempt created it) is deleted between attempts and once
// the request is Failed.
func TestSweepLeftovers(t *testing.T) {
	leftover := func(t *testing.T, e *env, req *autoscalingv1.ProvisioningRequest, name string) {
		t.Helper()
		nc := test.NodeClaim(karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{pr.LabelRequest: string(req.UID), pr.LabelAttempt: "1"},
			Annotations: map[string]string{pr.AnnotationRequest: req.Namespace + "/" + req.Name, karpv1.DoNotDisruptAnnotationKey: "true"}}})
		e.must(t, e.kube.Create(e.ctx, nc))
	}
	for _, tt := range []struct {
		name     string
		attempts int
	}{{"between attempts", 3}, {"failed", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, pr.Options{MaxAttempts: tt.attempts})
			req := e.reconcile(t, e.request(t, atomic, 8, 4))
			claims := e.claims(t, req)
			e.must(t, e.kube.Delete(e.ctx, &claims[0]))
			e.clk.Step(20 * time.Second)
			req = e.reconcile(t, req)
			if n := len(e.claims(t, req)); n != 0 {
				t.Fatalf("%d NodeClaims after the rollback", n)
			}
			if failed := cond(req, autoscalingv1.Failed).Status == metav1.ConditionTrue; failed != (tt.attempts == 1) {
				t.Fatalf("Failed = %v after attempt 1 of %d", failed, tt.attempts)
			}
			leftover(t, e, req, "late")
			req = e.reconcile(t, req)
			if left := e.claims(t, req); len(left) != 0 {
				t.Fatalf("NodeClaim %s of the request left running with no attempt in flight", left[0].Name)
			}
			if _, after := req.Status.ProvisioningClassDetails[pr.DetailRetryAfter]; after != (tt.attempts > 1) {
				t.Fatalf("retryAfter %v, want it only between attempts", req.Status.ProvisioningClassDetails)
			}
		})
	}
}

// With an API reader (the manager's, uncached), a NodeClaim core deleted
// for a refused launch is known gone at once, without waiting out the
// cache grace, and the attempt is rolled back.
func TestAPIReaderSeesRefusalAtOnce(t *testing.T) {
	e := newEnv(t, pr.Options{MaxAttempts: 3})
	opts := pr.Options{MaxAttempts: 3, APIReader: e.kube}
	e.ctrl = e.newController(opts)
	req := e.reconcile(t, e.request(t, atomic, 8, 4))
	claims := e.claims(t, req)
	e.must(t, e.kube.Delete(e.ctx, &claims[0]))
	e.clk.Step(time.Second)
	req = e.reconcile(t, req)
	got := cond(req, autoscalingv1.Provisioned)
	if got.Reason != pr.ReasonCapacityIsNotFound || !strings.Contains(got.Message, claims[0].Name+" was deleted before it registered") {
		t.Fatalf("Provisioned = %s %q, want the refusal reported", got.Reason, got.Message)
	}
	if n := len(e.claims(t, req)); n != 0 {
		t.Fatalf("%d NodeClaims left after the rollback", n)
	}
}
