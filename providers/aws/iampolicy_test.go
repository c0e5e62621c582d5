package aws_test

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/sqs"
)

// policyStatement is a statement of iam-policy.json.
type policyStatement struct {
	Sid      string
	Effect   string
	Action   json.RawMessage
	Resource json.RawMessage
}

// policyStatements reads iam-policy.json's statements.
func policyStatements(t *testing.T) []policyStatement {
	t.Helper()
	raw, err := os.ReadFile("iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Statement []policyStatement }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("iam-policy.json is not valid JSON: %v", err)
	}
	return doc.Statement
}

// policyActions reads iam-policy.json's actions.
func policyActions(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range policyStatements(t) {
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
	e := resolvedEnv(t)
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
		nc := e.launch(t, c)
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
		for _, r := range e.createAll(gangClaims(uid, uid, 2, 2, "p5.48xlarge")) {
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
	// The interruption queue (providers/aws/sqs, its own client on the
	// same config): look the queue up, receive and delete a message.
	e.srv.CreateQueue("karpenter-gpu-" + cluster)
	if _, err := e.srv.SendMessage("karpenter-gpu-"+cluster, fakeaws.SpotInterruptionEvent("us-east-1", "i-0123456789abcdef0", epoch)); err != nil {
		t.Fatal(err)
	}
	cfg, err := awsbackend.LoadConfig(e.ctx, awsbackend.ConfigOptions{Region: "us-east-1", Extra: []func(*config.LoadOptions) error{
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
	}})
	if err != nil {
		t.Fatal(err)
	}
	queue, err := sqs.New(sqs.Options{Client: sqs.NewClient(cfg, e.srv.URL), QueueName: "karpenter-gpu-" + cluster, WaitTime: -1})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := queue.Receive(e.ctx)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("interruption queue: %d messages, %v", len(msgs), err)
	}
	if err := queue.Delete(e.ctx, msgs[0]); err != nil {
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

// The SQS actions are granted on karpenter-gpu's own interruption queue
// only: never on Karpenter for AWS's queue (two receivers on one queue
// would each miss the other's messages) nor on every queue.
func TestIAMPolicyScopesSQSToTheInterruptionQueue(t *testing.T) {
	const queueARN = `"arn:${AWS_PARTITION}:sqs:${AWS_REGION}:${AWS_ACCOUNT_ID}:${INTERRUPTION_QUEUE}"`
	found := false
	for _, s := range policyStatements(t) {
		if !strings.Contains(string(s.Action), `"sqs:`) {
			continue
		}
		found = true
		if string(s.Resource) != queueARN {
			t.Errorf("statement %s grants SQS actions on %s, want %s only", s.Sid, s.Resource, queueARN)
		}
	}
	if !found {
		t.Error("no statement grants the SQS actions of the interruption queue")
	}
}
