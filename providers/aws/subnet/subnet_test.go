package subnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/subnet"
)

func provider(t *testing.T) (*subnet.Provider, func(action, code string)) {
	srv := awstest.Server(t, awstest.Inventory())
	srv.SetPageSize(1) // every answer paginates
	p := subnet.NewProvider(subnet.Options{EC2: awstest.Clients(t, srv).EC2, CallTimeout: 5 * time.Second})
	return p, func(action, code string) { srv.Fail(action, code, "injected", 5) }
}

func TestList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		terms []v1alpha1.SubnetSelectorTerm
		want  []string
	}{
		{"tags: by zone, most free addresses first, across pages", []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": awstest.Cluster}}}, []string{"subnet-a2", "subnet-a1", "subnet-b"}},
		{"any value of a tag", []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"tier": "*"}}}, []string{"subnet-public"}},
		{"ID", []v1alpha1.SubnetSelectorTerm{{ID: "subnet-b"}}, []string{"subnet-b"}},
		{"terms are ORed, duplicates once", []v1alpha1.SubnetSelectorTerm{{ID: "subnet-b"}, {Tags: map[string]string{"tier": "public"}}, {ID: "subnet-b"}}, []string{"subnet-b", "subnet-public"}},
		{"no match", []v1alpha1.SubnetSelectorTerm{{ID: "subnet-nope"}}, nil},
		{"empty term selects nothing", []v1alpha1.SubnetSelectorTerm{{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := provider(t)
			nc := awstest.NodeClass()
			nc.Spec.SubnetSelectorTerms = tc.terms
			got, err := p.List(context.Background(), nc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, lo.Map(got, func(s subnet.Subnet, _ int) string { return s.ID }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("subnets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDetailsAndZones(t *testing.T) {
	p, _ := provider(t)
	nc := awstest.NodeClass()
	got, err := p.List(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	if want := (subnet.Subnet{ID: "subnet-a2", Zone: "us-east-1a", ZoneID: "use1-az1", FreeIPs: 500}); got[0] != want {
		t.Errorf("first subnet %+v, want %+v", got[0], want)
	}
	// The status lists them in another order: InZone still puts the one
	// with the most free addresses first.
	nc.Status.Subnets = []v1alpha1.Subnet{{ID: "subnet-b", Zone: "us-east-1b"}, {ID: "subnet-a1", Zone: "us-east-1a"}, {ID: "subnet-a2", Zone: "us-east-1a"}}
	if diff := cmp.Diff([]string{"subnet-a2", "subnet-a1"}, p.InZone(nc, "us-east-1a")); diff != "" {
		t.Errorf("InZone (-want +got):\n%s", diff)
	}
	if got := p.InZone(nc, "us-east-1c"); len(got) != 0 {
		t.Errorf("InZone of a zone without a subnet = %v", got)
	}
	if z := p.ZoneOf("subnet-b"); z != "us-east-1b" {
		t.Errorf("ZoneOf(subnet-b) = %q", z)
	}
	if z := p.ZoneOf("subnet-unknown"); z != "" {
		t.Errorf("ZoneOf(unknown) = %q, want empty", z)
	}
	if diff := cmp.Diff([]string{"us-east-1a", "us-east-1b"}, subnet.Zones(nc)); diff != "" {
		t.Errorf("Zones (-want +got):\n%s", diff)
	}
}

func TestListFailsWhenEC2Fails(t *testing.T) {
	p, fail := provider(t)
	fail("DescribeSubnets", "UnauthorizedOperation")
	if _, err := p.List(context.Background(), awstest.NodeClass()); err == nil {
		t.Fatal("List succeeded although DescribeSubnets failed")
	}
}
