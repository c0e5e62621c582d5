package provisioningrequest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	"k8s.io/apimachinery/pkg/api/equality"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

// Under a manager the controller is handed the request from the informer
// cache, which can be older than the request on the API server: someone
// wrote it a moment ago, or the controller itself did (the NodeClaim
// events of an attempt requeue the request at once, often before the watch
// has delivered the attempt's record or its rollback). These tests hand the
// controller such stale copies; its status writes are locked on the version
// it worked from (patchStatus), so a stale copy writes nothing.

// get is the request's current copy on the API server.
func (e *env) get(t testing.TB, req *autoscalingv1.ProvisioningRequest) *autoscalingv1.ProvisioningRequest {
	t.Helper()
	cur := &autoscalingv1.ProvisioningRequest{}
	e.must(t, e.kube.Get(e.ctx, client.ObjectKeyFromObject(req), cur))
	return cur
}

// reconcileStale runs the controller on a copy of stale (as the informer
// cache would hand it) and checks that it writes nothing over the request
// and asks to be run again, quietly: no error.
func (e *env) reconcileStale(t testing.TB, stale *autoscalingv1.ProvisioningRequest) {
	t.Helper()
	before := e.get(t, stale)
	res, err := e.ctrl.Reconcile(e.ctx, stale.DeepCopy())
	if err != nil {
		t.Errorf("reconcile of a stale copy returned %v; want a quiet requeue", err)
	}
	if res.RequeueAfter <= 0 {
		t.Errorf("reconcile of a stale copy: %+v, want a requeue", res)
	}
	after := e.get(t, stale)
	if after.ResourceVersion != before.ResourceVersion || !equality.Semantic.DeepEqual(after.Status, before.Status) {
		t.Errorf("reconcile of a stale copy (resourceVersion %s) wrote over the request (%s → %s):\nbefore %+v\nafter  %+v",
			stale.ResourceVersion, before.ResourceVersion, after.ResourceVersion, before.Status, after.Status)
	}
}

// The sequence that left a zone untried in test/gang's managed spec: an
// attempt is refused and rolled back; the NodeClaim deletions requeue the
// request while the cache still shows the attempt in flight, so it is
// rolled back a second time from that copy; the next attempt then starts
// from the copy of the first rollback. Without a lock on the status writes
// the second rollback was written, the next attempt's record was refused
// (conflict), and the status patch after it still recorded the attempt
// (attemptStarted, zone) with no NodeClaims created: 15 s later it failed
// as "interrupted before they were created" without reaching the fleet.
func TestStaleCopiesAroundARollback(t *testing.T) {
	e := newEnv(t, pr.Options{MaxAttempts: 3})
	req := e.reconcile(t, e.request(t, atomic, 8, 4))
	inFlight := e.get(t, req)
	claims := e.claims(t, req)
	if len(claims) != 4 {
		t.Fatalf("attempt 1: %d NodeClaims, want 4", len(claims))
	}
	e.must(t, e.kube.Delete(e.ctx, &claims[0]))
	e.clk.Step(20 * time.Second)
	rolledBack := e.reconcile(t, req)
	if msg := cond(rolledBack, autoscalingv1.Provisioned).Message; !strings.Contains(msg, "attempt 1 of 3 failed") {
		t.Fatalf("attempt 1 not rolled back: %q", msg)
	}
	retryAfter, err := time.Parse(time.RFC3339Nano, string(rolledBack.Status.ProvisioningClassDetails[pr.DetailRetryAfter]))
	e.must(t, err)

	// A NodeClaim deletion requeues the request; the cache still has the
	// attempt in flight.
	e.clk.Step(10 * time.Millisecond)
	e.reconcileStale(t, inFlight)

	// The backoff passes; the cache has the (first) rollback.
	e.clk.SetTime(retryAfter.Add(time.Millisecond))
	if _, err := e.ctrl.Reconcile(e.ctx, rolledBack.DeepCopy()); err != nil {
		t.Errorf("reconcile after the backoff: %v", err)
	}
	cur := e.get(t, req)
	names := lo.Compact(strings.Split(string(cur.Status.ProvisioningClassDetails[pr.DetailNodeClaims]), ","))
	claims = e.claims(t, cur)
	if got := string(cur.Status.ProvisioningClassDetails[pr.DetailAttempt]); got != "2" || len(claims) != 4 || len(names) != 4 {
		// What becomes of it once the create grace is over.
		e.clk.Step(20 * time.Second)
		later := cond(e.reconcile(t, req), autoscalingv1.Provisioned).Message
		t.Fatalf("attempt %s in flight (started %s) with %d NodeClaims recorded, %d created; want attempt 2 launched with 4; 20 s later: %q",
			got, cur.Status.ProvisioningClassDetails[pr.DetailStarted], len(names), len(claims), later)
	}
	for _, c := range claims {
		if c.Labels[pr.LabelAttempt] != "2" || !strings.Contains(","+string(cur.Status.ProvisioningClassDetails[pr.DetailNodeClaims])+",", ","+c.Name+",") {
			t.Errorf("NodeClaim %s (attempt %s) is not one attempt 2 recorded (%s)", c.Name, c.Labels[pr.LabelAttempt], cur.Status.ProvisioningClassDetails[pr.DetailNodeClaims])
		}
	}
}

// Every stale copy the cache can hand around an attempt: none of them
// writes over the request, and the request goes on from its current copy.
func TestStaleCopiesWriteNothing(t *testing.T) {
	t.Run("the new request, written by someone else before the cache showed it", func(t *testing.T) {
		// What test/gang's managed spec hit (its ExpectApplied writes the
		// status right after the create; in a cluster, any write to the
		// request: a label, Kueue): the first reconcile works from the
		// created copy; its record of attempt 1 is refused, and the status
		// patch after it recorded attempt 1 anyway, with no NodeClaims: no
		// group reached the fleet and 15 s later the attempt failed as
		// "interrupted before they were created".
		e := newEnv(t, pr.Options{})
		created := e.get(t, e.request(t, atomic, 8, 4))
		changed := created.DeepCopy()
		changed.Labels = map[string]string{"team": "ml"}
		e.must(t, e.kube.Patch(e.ctx, changed, client.MergeFrom(created)))
		e.reconcileStale(t, created)
		if n := len(e.claims(t, created)); n != 0 {
			t.Fatalf("%d NodeClaims launched from the stale copy", n)
		}
		cur := e.reconcile(t, created)
		recorded := lo.Compact(strings.Split(string(cur.Status.ProvisioningClassDetails[pr.DetailNodeClaims]), ","))
		if got := cond(cur, autoscalingv1.Provisioned); got.Reason != pr.ReasonProvisioning || len(recorded) != 4 || len(e.claims(t, cur)) != 4 {
			t.Fatalf("from the current copy: Provisioned %s %q, %d NodeClaims recorded, %d created; want attempt 1 launched with 4",
				got.Reason, got.Message, len(recorded), len(e.claims(t, cur)))
		}
	})
	t.Run("the new request, with attempt 1 launched", func(t *testing.T) {
		e := newEnv(t, pr.Options{})
		created := e.get(t, e.request(t, atomic, 8, 4))
		launched := e.reconcile(t, created)
		e.clk.Step(time.Second)
		// A NodeClaim creation requeues the request before the cache has
		// the attempt: starting it again from that copy must neither
		// record a second start (zone, started) nor drop the attempt's
		// conditions, nor launch anything.
		e.reconcileStale(t, created)
		if n := len(e.claims(t, launched)); n != 4 {
			t.Fatalf("%d NodeClaims, want attempt 1's 4", n)
		}
		e.register(t, e.claims(t, launched)...)
		if got := cond(e.reconcile(t, launched), autoscalingv1.Provisioned); got.Reason != pr.ReasonCapacityIsProvisioned {
			t.Fatalf("Provisioned = %s %q after every NodeClaim registered", got.Reason, got.Message)
		}
	})
	t.Run("a provisioned request, with its booking released", func(t *testing.T) {
		e := newEnv(t, pr.Options{})
		req := e.reconcile(t, e.request(t, atomic, 8, 4))
		e.register(t, e.claims(t, req)...)
		provisioned := e.reconcile(t, req)
		e.clk.Step(pr.DefaultBookingTTL + time.Second)
		expired := e.reconcile(t, provisioned)
		if got := string(expired.Status.ProvisioningClassDetails[pr.DetailBooking]); got != pr.BookingExpired {
			t.Fatalf("booking %q, want %q", got, pr.BookingExpired)
		}
		e.clk.Step(time.Second)
		e.reconcileStale(t, provisioned)
		held := 0
		for _, c := range e.claims(t, req) {
			if c.Annotations[karpv1.DoNotDisruptAnnotationKey] == "true" {
				held++
			}
		}
		if held != 0 {
			t.Fatalf("%d NodeClaims held again after the booking expired", held)
		}
	})
}
