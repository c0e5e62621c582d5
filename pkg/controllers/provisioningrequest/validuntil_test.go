package provisioningrequest_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"

	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

func withParameter(t *testing.T, e *env, req *autoscalingv1.ProvisioningRequest, value string) *autoscalingv1.ProvisioningRequest {
	t.Helper()
	req.Spec.Parameters = map[string]autoscalingv1.Parameter{pr.ParamValidUntilSeconds: autoscalingv1.Parameter(value)}
	req.CreationTimestamp = metav1.NewTime(e.clk.Now())
	e.must(t, e.kube.Update(e.ctx, req))
	return req
}

// ValidUntilSeconds: the request keeps trying past MaxAttempts until its
// deadline, then fails and rolls back the attempt in flight.
func TestValidUntilSeconds(t *testing.T) {
	e := newEnv(t, pr.Options{MaxAttempts: 1, RetryBackoff: 10 * time.Second})
	req := withParameter(t, e, e.request(t, atomic, 8, 4), "300")
	req = e.reconcile(t, req)
	claims := e.claims(t, req)
	if len(claims) != 4 {
		t.Fatalf("attempt 1: %d NodeClaims, want 4", len(claims))
	}
	e.must(t, e.kube.Delete(e.ctx, &claims[0]))
	e.clk.Step(20 * time.Second)
	req = e.reconcile(t, req)
	if c := cond(req, autoscalingv1.Failed); c.Status == metav1.ConditionTrue {
		t.Fatalf("failed after attempt 1 of MaxAttempts 1 although ValidUntilSeconds has not passed: %s", c.Message)
	}
	if msg := cond(req, autoscalingv1.Provisioned).Message; !strings.Contains(msg, "retrying until ValidUntilSeconds") {
		t.Fatalf("Provisioned message %q does not say it retries until ValidUntilSeconds", msg)
	}
	e.clk.Step(time.Minute)
	req = e.reconcile(t, req)
	if claims = e.claims(t, req); len(claims) != 4 || claims[0].Labels[pr.LabelAttempt] != "2" {
		t.Fatalf("attempt 2 not launched: %d NodeClaims", len(claims))
	}
	// The deadline passes with attempt 2 in flight.
	e.clk.Step(5 * time.Minute)
	req = e.reconcile(t, req)
	c := cond(req, autoscalingv1.Failed)
	if c.Status != metav1.ConditionTrue || c.Reason != pr.ReasonCapacityIsNotFound || !strings.Contains(c.Message, "ValidUntilSeconds (300) passed after 2 attempts") {
		t.Fatalf("Failed = %+v", c)
	}
	if n := len(e.claims(t, req)); n != 0 {
		t.Fatalf("%d NodeClaims left after the deadline", n)
	}
}

func TestValidUntilSecondsInvalid(t *testing.T) {
	e := newEnv(t, pr.Options{})
	req := withParameter(t, e, e.request(t, atomic, 8, 4), "soon")
	req = e.reconcile(t, req)
	c := cond(req, autoscalingv1.Failed)
	if c.Status != metav1.ConditionTrue || c.Reason != pr.ReasonInvalidParameter || !strings.Contains(c.Message, `ValidUntilSeconds is "soon"`) {
		t.Fatalf("Failed = %+v", c)
	}
	if n := len(e.claims(t, req)); n != 0 {
		t.Fatalf("launched %d NodeClaims for an invalid request", n)
	}
}
