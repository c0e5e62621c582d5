package securitygroup_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/securitygroup"
)

func TestList(t *testing.T) {
	nodes := v1alpha1.SecurityGroup{ID: "sg-nodes", Name: "nodes"}
	extra := v1alpha1.SecurityGroup{ID: "sg-extra", Name: "extra"}
	for _, tc := range []struct {
		name  string
		terms []v1alpha1.SecurityGroupSelectorTerm
		want  []v1alpha1.SecurityGroup
	}{
		{"tags", []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": awstest.Cluster}}}, []v1alpha1.SecurityGroup{nodes}},
		{"any value of a tag", []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"team": "*"}}}, []v1alpha1.SecurityGroup{extra}},
		{"name", []v1alpha1.SecurityGroupSelectorTerm{{Name: "extra"}}, []v1alpha1.SecurityGroup{extra}},
		{"ID wins over name", []v1alpha1.SecurityGroupSelectorTerm{{ID: "sg-nodes", Name: "extra"}}, []v1alpha1.SecurityGroup{nodes}},
		{"terms are ORed, sorted by ID, duplicates once", []v1alpha1.SecurityGroupSelectorTerm{{ID: "sg-nodes"}, {Name: "extra"}, {Name: "nodes"}}, []v1alpha1.SecurityGroup{extra, nodes}},
		{"no match", []v1alpha1.SecurityGroupSelectorTerm{{Name: "nope"}}, []v1alpha1.SecurityGroup{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := awstest.Server(t, awstest.Inventory())
			srv.SetPageSize(1)
			p := securitygroup.NewProvider(securitygroup.Options{EC2: awstest.Clients(t, srv).EC2, CallTimeout: 5 * time.Second})
			nc := awstest.NodeClass()
			nc.Spec.SecurityGroupSelectorTerms = tc.terms
			got, err := p.List(context.Background(), nc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("security groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListFailsWhenEC2Fails(t *testing.T) {
	srv := awstest.Server(t, awstest.Inventory())
	srv.Fail("DescribeSecurityGroups", "UnauthorizedOperation", "injected", 5)
	p := securitygroup.NewProvider(securitygroup.Options{EC2: awstest.Clients(t, srv).EC2, CallTimeout: 5 * time.Second})
	if _, err := p.List(context.Background(), awstest.NodeClass()); err == nil {
		t.Fatal("List succeeded although DescribeSecurityGroups failed")
	}
}
