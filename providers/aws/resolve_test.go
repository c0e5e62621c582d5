package aws_test

import (
	"slices"
	"testing"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

func TestResolve(t *testing.T) {
	type want struct {
		subnets, sgs, amis []string
		profile            string
		falseCond, reason  string // a condition expected False, and its reason
	}
	cases := []struct {
		name string
		nc   func(*v1alpha1.GPUNodeClass)
		inv  func(*fakeaws.Inventory)
		want want
	}{
		{
			name: "default AL2023 by tags and role",
			want: want{
				subnets: []string{"subnet-a2", "subnet-a1", "subnet-b", "subnet-c"},
				sgs:     []string{"sg-nodes"},
				amis:    []string{"ami-nvx86", "ami-nvarm", "ami-neuron", "ami-stdx86"},
				profile: "unit_",
			},
		},
		{
			name: "subnet and security group by id and name",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.SubnetSelectorTerms = []v1alpha1.SubnetSelectorTerm{{ID: "subnet-b"}, {ID: "subnet-public"}}
				nc.Spec.SecurityGroupSelectorTerms = []v1alpha1.SecurityGroupSelectorTerm{{Name: "extra"}, {ID: "sg-nodes"}}
			},
			want: want{subnets: []string{"subnet-b", "subnet-public"}, sgs: []string{"sg-extra", "sg-nodes"}, amis: []string{"ami-nvx86"}, profile: "unit_"},
		},
		{
			name: "tag wildcard",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.SecurityGroupSelectorTerms = []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"team": "*"}}}
			},
			want: want{sgs: []string{"sg-extra"}, amis: []string{"ami-nvx86"}, profile: "unit_"},
		},
		{
			name: "no subnet matches",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.SubnetSelectorTerms = []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": "other"}}}
			},
			want: want{falseCond: v1alpha1.ConditionTypeSubnetsReady, reason: "SubnetsNotFound"},
		},
		{
			name: "no security group matches",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.SecurityGroupSelectorTerms = []v1alpha1.SecurityGroupSelectorTerm{{Name: "nope"}}
			},
			want: want{falseCond: v1alpha1.ConditionTypeSecurityGroupsReady, reason: "SecurityGroupsNotFound"},
		},
		{
			name: "amiSelectorTerms by tags picks the newest image",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.AMIFamily = v1alpha1.AMIFamilyCustom
				nc.Spec.AMISelectorTerms = []v1alpha1.AMISelectorTerm{{Tags: map[string]string{"team": "ml"}, Owner: "self"}}
			},
			want: want{amis: []string{"ami-custom-new"}, profile: "unit_"},
		},
		{
			name: "amiSelectorTerms by name wildcard and id",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.AMIFamily = v1alpha1.AMIFamilyCustom
				nc.Spec.AMISelectorTerms = []v1alpha1.AMISelectorTerm{{Name: "team-gpu-2025*", Owner: "self"}, {ID: "ami-nvarm"}}
			},
			want: want{amis: []string{"ami-nvarm", "ami-custom-old"}, profile: "unit_"},
		},
		{
			name: "Bottlerocket NVIDIA via SSM",
			nc:   func(nc *v1alpha1.GPUNodeClass) { nc.Spec.AMIFamily = v1alpha1.AMIFamilyBottlerocket },
			want: want{amis: []string{"ami-brnv"}, profile: "unit_"},
		},
		{
			name: "no image published",
			inv:  func(inv *fakeaws.Inventory) { inv.SSMParameters = nil },
			want: want{falseCond: v1alpha1.ConditionTypeAMIsReady, reason: "AMIsNotFound"},
		},
		{
			name: "existing instance profile",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.Role = ""
				nc.Spec.InstanceProfile = lo.ToPtr("GPUNodes")
			},
			inv: func(inv *fakeaws.Inventory) {
				inv.Profiles = []fakeaws.InstanceProfile{{Name: "GPUNodes", Roles: []string{"KarpenterNodeRole"}}}
			},
			want: want{profile: "GPUNodes"},
		},
		{
			name: "missing instance profile",
			nc: func(nc *v1alpha1.GPUNodeClass) {
				nc.Spec.Role = ""
				nc.Spec.InstanceProfile = lo.ToPtr("Missing")
			},
			want: want{falseCond: v1alpha1.ConditionTypeInstanceProfileReady, reason: "InstanceProfileNotFound"},
		},
		{
			name: "role that does not exist",
			nc:   func(nc *v1alpha1.GPUNodeClass) { nc.Spec.Role = "NoSuchRole" },
			want: want{falseCond: v1alpha1.ConditionTypeInstanceProfileReady, reason: "InstanceProfileNotFound"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventory()
			if tc.inv != nil {
				tc.inv(&inv)
			}
			e := newEnv(t, inv)
			nc := nodeClass()
			if tc.nc != nil {
				tc.nc(nc)
			}
			if err := e.backend.Resolve(e.ctx, nc); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			conds := nc.StatusConditions()
			if tc.want.falseCond != "" {
				c := conds.Get(tc.want.falseCond)
				if !c.IsFalse() || c.Reason != tc.want.reason {
					t.Fatalf("%s = %s/%s (%s), want False/%s", tc.want.falseCond, c.Status, c.Reason, c.Message, tc.want.reason)
				}
				if conds.Root().IsTrue() {
					t.Fatal("Ready is True with a False sub-condition")
				}
				return
			}
			if !conds.Root().IsTrue() {
				t.Fatalf("Ready is not True: %+v", nc.Status.Conditions)
			}
			if tc.want.subnets != nil {
				got := lo.Map(nc.Status.Subnets, func(s v1alpha1.Subnet, _ int) string { return s.ID })
				if !slices.Equal(got, tc.want.subnets) {
					t.Errorf("subnets = %v, want %v", got, tc.want.subnets)
				}
			}
			if tc.want.sgs != nil {
				got := lo.Map(nc.Status.SecurityGroups, func(s v1alpha1.SecurityGroup, _ int) string { return s.ID })
				if !slices.Equal(got, tc.want.sgs) {
					t.Errorf("security groups = %v, want %v", got, tc.want.sgs)
				}
			}
			got := lo.Map(nc.Status.AMIs, func(a v1alpha1.AMI, _ int) string { return a.ID })
			for _, id := range tc.want.amis {
				if !lo.Contains(got, id) {
					t.Errorf("AMIs = %v, missing %s", got, id)
				}
			}
			if len(nc.Status.AMIs) > 0 && len(nc.Status.AMIs[0].Requirements) == 0 {
				t.Errorf("AMI %s has no requirements", nc.Status.AMIs[0].ID)
			}
			if p := nc.Status.InstanceProfile; len(p) < len(tc.want.profile) || p[:len(tc.want.profile)] != tc.want.profile {
				t.Errorf("instance profile = %q, want prefix %q", p, tc.want.profile)
			}
		})
	}
}

func TestResolveAMIRequirementsSelectByAccelerator(t *testing.T) {
	e := newEnv(t, inventory())
	nc := nodeClass()
	if err := e.backend.Resolve(e.ctx, nc); err != nil {
		t.Fatal(err)
	}
	byID := lo.SliceToMap(nc.Status.AMIs, func(a v1alpha1.AMI) (string, []corev1.NodeSelectorRequirement) { return a.ID, a.Requirements })
	has := func(id, key string, op corev1.NodeSelectorOperator, values ...string) {
		t.Helper()
		if !lo.ContainsBy(byID[id], func(r corev1.NodeSelectorRequirement) bool {
			return r.Key == key && r.Operator == op && slices.Equal(r.Values, values)
		}) {
			t.Errorf("%s requirements %v lack %s %s %v", id, byID[id], key, op, values)
		}
	}
	has("ami-nvx86", corev1.LabelArchStable, corev1.NodeSelectorOpIn, "amd64")
	has("ami-nvx86", v1alpha1.LabelGPUManufacturer, corev1.NodeSelectorOpIn, "nvidia")
	has("ami-nvarm", corev1.LabelArchStable, corev1.NodeSelectorOpIn, "arm64")
	has("ami-neuron", v1alpha1.LabelAcceleratorName, corev1.NodeSelectorOpIn, "inferentia", "inferentia2", "trainium", "trainium2")
	has("ami-stdx86", v1alpha1.LabelGPUCount, corev1.NodeSelectorOpDoesNotExist)
	// The managed profile holds the role.
	profiles := e.srv.InstanceProfiles()
	p, ok := profiles[nc.Status.InstanceProfile]
	if !ok || !slices.Equal(p.Roles, []string{"KarpenterNodeRole"}) {
		t.Errorf("instance profile %q = %+v, want it created with role KarpenterNodeRole", nc.Status.InstanceProfile, p)
	}
	// Resolving again reuses it.
	before := len(e.srv.Requests("CreateInstanceProfile"))
	if err := e.backend.Resolve(e.ctx, nc); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.Requests("CreateInstanceProfile")); n != before {
		t.Errorf("second Resolve created the profile again (%d calls)", n)
	}
}

func TestResolveAPIFailureKeepsStatusAndReportsError(t *testing.T) {
	e := newEnv(t, inventory())
	nc := nodeClass()
	if err := e.backend.Resolve(e.ctx, nc); err != nil {
		t.Fatal(err)
	}
	e.srv.Fail("DescribeSubnets", "UnauthorizedOperation", "not allowed", 1)
	err := e.backend.Resolve(e.ctx, nc)
	if err == nil {
		t.Fatal("Resolve succeeded although DescribeSubnets failed")
	}
	if c := nc.StatusConditions().Get(v1alpha1.ConditionTypeSubnetsReady); !c.IsFalse() || c.Reason != "SubnetsResolutionFailed" {
		t.Errorf("SubnetsReady = %s/%s, want False/SubnetsResolutionFailed", c.Status, c.Reason)
	}
	if len(nc.Status.Subnets) != 4 {
		t.Errorf("subnets = %v, want the last resolved ones kept", nc.Status.Subnets)
	}
}
