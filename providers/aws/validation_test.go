package aws_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
)

// TestValidateDryRuns drives Validate through the real EC2 SDK client
// against the in-process endpoint, which answers dry runs as EC2 does
// (DryRunOperation when the request would succeed, the refusal otherwise).
func TestValidateDryRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup runs after Resolve; it may break the node class or inject
		// a refusal.
		setup func(e *env, nc *v1alpha1.GPUNodeClass)
		// wantOp/wantReason: a *ValidationError; both empty: success;
		// wantOp "inconclusive": an error that is not a verdict.
		wantOp, wantReason string
	}{
		{name: "valid node class"},
		{name: "public IP through a network interface", setup: func(_ *env, nc *v1alpha1.GPUNodeClass) {
			nc.Spec.AssociatePublicIPAddress = lo.ToPtr(true)
		}},
		{name: "no ec2:RunInstances (or iam:PassRole)", setup: func(e *env, _ *v1alpha1.GPUNodeClass) {
			e.srv.Fail("RunInstances", "UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: x", 1)
		}, wantOp: "RunInstances", wantReason: "UnauthorizedOperation"},
		{name: "no ec2:CreateLaunchTemplate", setup: func(e *env, _ *v1alpha1.GPUNodeClass) {
			e.srv.Fail("CreateLaunchTemplate", "UnauthorizedOperation", "You are not authorized to perform this operation.", 1)
		}, wantOp: "CreateLaunchTemplate", wantReason: "UnauthorizedOperation"},
		{name: "instance profile deleted since resolution", setup: func(_ *env, nc *v1alpha1.GPUNodeClass) {
			nc.Status.InstanceProfile = "deleted-profile"
		}, wantOp: "CreateLaunchTemplate", wantReason: "InvalidParameterValue"},
		{name: "subnet deleted since resolution", setup: func(_ *env, nc *v1alpha1.GPUNodeClass) {
			nc.Status.Subnets[0].ID = "subnet-gone"
		}, wantOp: "RunInstances", wantReason: "InvalidSubnetID.NotFound"},
		{name: "image deregistered since resolution", setup: func(_ *env, nc *v1alpha1.GPUNodeClass) {
			nc.Status.AMIs[0].ID = "ami-gone"
		}, wantOp: "CreateLaunchTemplate", wantReason: "InvalidAMIID.NotFound"},
		{name: "dry-run type scarce: says nothing about the node class", setup: func(e *env, _ *v1alpha1.GPUNodeClass) {
			e.srv.Fail("RunInstances", "InsufficientInstanceCapacity", "We currently do not have sufficient g4dn.xlarge capacity.", 1)
		}},
		{name: "throttled: inconclusive", setup: func(e *env, _ *v1alpha1.GPUNodeClass) {
			e.srv.Throttle("RunInstances", 20)
		}, wantOp: "inconclusive"},
		{name: "not resolved: inconclusive", setup: func(_ *env, nc *v1alpha1.GPUNodeClass) {
			nc.Status = v1alpha1.GPUNodeClassStatus{}
		}, wantOp: "inconclusive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, inventory())
			nc := nodeClass()
			if err := e.backend.Resolve(e.ctx, nc); err != nil {
				t.Fatal(err)
			}
			templates, instances := len(e.srv.LaunchTemplates()), len(e.srv.Instances())
			e.srv.ResetRequests()
			if tc.setup != nil {
				tc.setup(e, nc)
			}
			err := e.backend.Validate(e.ctx, nc)

			var verr *awsbackend.ValidationError
			switch tc.wantOp {
			case "":
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			case "inconclusive":
				if err == nil || errors.As(err, &verr) {
					t.Fatalf("Validate: %v, want an inconclusive error (no verdict)", err)
				}
			default:
				if !errors.As(err, &verr) {
					t.Fatalf("Validate: %v, want a *ValidationError", err)
				}
				if verr.Operation != tc.wantOp || verr.Reason != tc.wantReason || verr.Message == "" {
					t.Fatalf("got %s/%s %q, want %s/%s", verr.Operation, verr.Reason, verr.Message, tc.wantOp, tc.wantReason)
				}
			}
			// A dry run changes nothing.
			if len(e.srv.LaunchTemplates()) != templates || len(e.srv.Instances()) != instances {
				t.Errorf("dry run created resources: templates %d -> %d, instances %d -> %d",
					templates, len(e.srv.LaunchTemplates()), instances, len(e.srv.Instances()))
			}
			for _, r := range append(e.srv.Requests("CreateLaunchTemplate"), e.srv.Requests("RunInstances")...) {
				if r.Form.Get("DryRun") != "true" {
					t.Errorf("%s sent without DryRun", r.Action)
				}
			}
			if tc.name != "valid node class" {
				return
			}
			runs := e.srv.Requests("RunInstances")
			if len(runs) != 1 {
				t.Fatalf("%d RunInstances dry runs, want 1", len(runs))
			}
			f := runs[0].Form
			for k, want := range map[string]string{
				"ImageId": nc.Status.AMIs[0].ID, "InstanceType": "g4dn.xlarge", "SubnetId": nc.Status.Subnets[0].ID,
				"IamInstanceProfile.Name": nc.Status.InstanceProfile, "MetadataOptions.HttpTokens": "required",
			} {
				if f.Get(k) != want {
					t.Errorf("RunInstances %s = %q, want %q", k, f.Get(k), want)
				}
			}
			var tags []string
			for k, v := range f {
				if strings.HasPrefix(k, "TagSpecification.1.Tag.") && strings.HasSuffix(k, ".Key") {
					tags = append(tags, v[0])
				}
			}
			for _, want := range []string{"kubernetes.io/cluster/" + cluster, "karpenter-gpu.io/cluster", "team"} {
				if !slices.Contains(tags, want) {
					t.Errorf("RunInstances dry run lacks tag %s (the policy's RunInstances conditions need the cluster tags): %v", want, tags)
				}
			}
		})
	}
}

// TestIAMPolicyAllowsValidation: the dry runs need the same actions as a
// launch; the controller policy grants them.
func TestIAMPolicyAllowsValidation(t *testing.T) {
	actions := policyActions(t)
	for _, a := range []string{"ec2:CreateLaunchTemplate", "ec2:RunInstances", "iam:PassRole"} {
		if !slices.Contains(actions, a) {
			t.Errorf("iam-policy.json lacks %s, which the GPUNodeClass validation dry runs need", a)
		}
	}
}
