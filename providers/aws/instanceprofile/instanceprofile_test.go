package instanceprofile_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instanceprofile"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
)

func newProvider(t *testing.T, inv fakeaws.Inventory, withIAM bool) (*instanceprofile.Provider, *fakeaws.Server) {
	t.Helper()
	srv := awstest.Server(t, inv)
	o := instanceprofile.Options{ClusterName: awstest.Cluster, Region: "us-east-1", CallTimeout: 5 * time.Second}
	if withIAM {
		o.IAM = awstest.Clients(t, srv).IAM
	}
	return instanceprofile.NewProvider(o), srv
}

func withRole(role string) *v1alpha1.GPUNodeClass {
	nc := awstest.NodeClass()
	nc.Spec.Role = role
	return nc
}

func withProfile(profile string) *v1alpha1.GPUNodeClass {
	nc := awstest.NodeClass()
	nc.Spec.Role, nc.Spec.InstanceProfile = "", lo.ToPtr(profile)
	return nc
}

func TestManagedProfileForARole(t *testing.T) {
	p, srv := newProvider(t, awstest.Inventory(), true)
	ctx := context.Background()
	name, reason, err := p.Resolve(ctx, withRole("KarpenterNodeRole"))
	if err != nil || reason != "" || name != p.Name("KarpenterNodeRole") {
		t.Fatalf("Resolve = %q, %q, %v; want the managed profile %q", name, reason, err, p.Name("KarpenterNodeRole"))
	}
	if !strings.HasPrefix(name, awstest.Cluster+"_") {
		t.Errorf("profile name %q does not start with the cluster name", name)
	}
	got := srv.InstanceProfiles()[name]
	if diff := cmp.Diff(fakeaws.InstanceProfile{Name: name, Path: "/karpenter-gpu/", Roles: []string{"KarpenterNodeRole"}, Tags: map[string]string{
		cloudprovider.TagCluster: awstest.Cluster, "kubernetes.io/cluster/" + awstest.Cluster: "owned", "topology.kubernetes.io/region": "us-east-1",
	}}, got); diff != "" {
		t.Errorf("profile (-want +got):\n%s", diff)
	}
	// Resolving again changes nothing; a role given as an ARN is the same.
	srv.ResetRequests()
	if again, _, err := p.Resolve(ctx, withRole("arn:aws:iam::111122223333:role/KarpenterNodeRole")); err != nil || again != name {
		t.Fatalf("Resolve by ARN = %q, %v; want %q", again, err, name)
	}
	if n := len(srv.Requests("CreateInstanceProfile")) + len(srv.Requests("AddRoleToInstanceProfile")); n != 0 {
		t.Errorf("%d create/add calls for a profile already right, want 0", n)
	}
}

func TestManagedProfileIsPointedAtANewRole(t *testing.T) {
	inv := awstest.Inventory()
	p, srv := newProvider(t, inv, true)
	// A profile of this cluster and role name exists, but holds another
	// role (spec.role changed, or someone edited it).
	name := p.Name("KarpenterNodeRole")
	inv.Profiles = []fakeaws.InstanceProfile{{Name: name, Path: "/karpenter-gpu/", Roles: []string{"OtherRole"}}}
	p, srv = newProvider(t, inv, true)
	if got, _, err := p.Resolve(context.Background(), withRole("KarpenterNodeRole")); err != nil || got != name {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	if roles := srv.InstanceProfiles()[name].Roles; !cmp.Equal(roles, []string{"KarpenterNodeRole"}) {
		t.Errorf("profile roles = %v, want [KarpenterNodeRole]", roles)
	}
}

func TestUnresolvableProfilesHaveAReason(t *testing.T) {
	inv := awstest.Inventory()
	inv.Profiles = []fakeaws.InstanceProfile{{Name: "existing", Path: "/"}}
	for _, tc := range []struct {
		name    string
		nc      *v1alpha1.GPUNodeClass
		withIAM bool
		want    string // profile; "" means a reason
	}{
		{"given profile exists", withProfile("existing"), true, "existing"},
		{"given profile is missing", withProfile("missing"), true, ""},
		{"given profile without IAM access is trusted", withProfile("missing"), false, "missing"},
		{"role that does not exist", withRole("NoSuchRole"), true, ""},
		{"role without IAM access", withRole("KarpenterNodeRole"), false, ""},
		{"neither role nor profile", withRole(""), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newProvider(t, inv, tc.withIAM)
			got, reason, err := p.Resolve(context.Background(), tc.nc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || (tc.want == "") != (reason != "") {
				t.Errorf("Resolve = %q, reason %q; want %q", got, reason, tc.want)
			}
		})
	}
}

func TestIAMFailureIsAnError(t *testing.T) {
	p, srv := newProvider(t, awstest.Inventory(), true)
	srv.Fail("GetInstanceProfile", "ServiceFailure", "injected", 100)
	if _, _, err := p.Resolve(context.Background(), withRole("KarpenterNodeRole")); err == nil {
		t.Fatal("Resolve succeeded although IAM failed")
	}
}
