package launchtemplate_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/ami"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instancetype"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/launchtemplate"
)

type env struct {
	srv   *fakeaws.Server
	clock *clocktesting.FakeClock
	p     *launchtemplate.Provider
	nc    *v1alpha1.GPUNodeClass
}

// newEnv resolves the node class's images with the real image provider
// (which learns their root devices) and builds the template provider on it.
func newEnv(t *testing.T, family string) *env {
	t.Helper()
	srv := awstest.Server(t, awstest.Inventory())
	clk := clocktesting.NewFakeClock(awstest.Epoch)
	clients := awstest.Clients(t, srv)
	images := ami.NewProvider(ami.Options{EC2: clients.EC2, SSM: clients.SSM, KubernetesVersion: "1.33", Clock: clk,
		InstanceTypes: instancetype.NewProvider(instancetype.Options{DisableDiscovery: true, Clock: clk}),
		Refresh:       time.Hour, RefreshRetry: time.Minute, CallTimeout: 5 * time.Second})
	nc := awstest.NodeClass()
	nc.Spec.AMISelectorTerms = []v1alpha1.AMISelectorTerm{{ID: "ami-nvx86"}, {ID: "ami-nvarm"}}
	nc.Spec.AMIFamily = family
	amis, _, err := images.List(context.Background(), nc)
	if err != nil || len(amis) != 2 {
		t.Fatalf("resolving images: %v, %v", amis, err)
	}
	nc.Status.AMIs = amis
	nc.Status.InstanceProfile = "profile"
	nc.Status.SecurityGroups = []v1alpha1.SecurityGroup{{ID: "sg-nodes"}}
	p := launchtemplate.NewProvider(launchtemplate.Options{EC2: clients.EC2, ClusterName: awstest.Cluster, ClusterEndpoint: "https://api.unit.example",
		ClusterCABundle: "Q0E=", ClusterCIDR: "10.100.0.0/16", Images: images, Clock: clk, TTL: 10 * time.Minute, CallTimeout: 5 * time.Second})
	return &env{srv: srv, clock: clk, p: p, nc: nc}
}

func (e *env) ensure(t *testing.T, nodeClaim *karpv1.NodeClaim, image, reservation string, block bool) fakeaws.LaunchTemplate {
	t.Helper()
	spec, err := e.p.Spec(e.nc, nodeClaim, image, reservation, block)
	if err != nil {
		t.Fatal(err)
	}
	name, err := e.p.Ensure(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if name != spec.Name() || !strings.HasPrefix(name, launchtemplate.LaunchTemplatePrefix+"gpu/") {
		t.Fatalf("template %q, spec name %q", name, spec.Name())
	}
	lt, ok := e.srv.LaunchTemplates()[name]
	if !ok {
		t.Fatalf("template %s was not created", name)
	}
	return lt
}

func TestAL2023Template(t *testing.T) {
	e := newEnv(t, v1alpha1.AMIFamilyAL2023)
	claim := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Labels: map[string]string{"team": "ml"}}}
	lt := e.ensure(t, claim, "ami-nvx86", "", false)
	for k, want := range map[string]string{
		"ImageId":                                                        "ami-nvx86",
		"IamInstanceProfile.Name":                                        "profile",
		"SecurityGroupId.1":                                              "sg-nodes",
		"MetadataOptions.HttpTokens":                                     "required",
		"MetadataOptions.HttpPutResponseHopLimit":                        "1",
		"BlockDeviceMapping.1.DeviceName":                                "/dev/xvda",
		"BlockDeviceMapping.1.Ebs.VolumeSize":                            "200",
		"BlockDeviceMapping.1.Ebs.VolumeType":                            "gp3",
		"BlockDeviceMapping.1.Ebs.Encrypted":                             "true",
		"CapacityReservationSpecification.CapacityReservationPreference": "none",
	} {
		if got := lt.Data[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if lt.Tags[cloudprovider.TagCluster] != awstest.Cluster || lt.Tags[cloudprovider.TagNodeClass] != "gpu" {
		t.Errorf("template tags %v", lt.Tags)
	}
	ud, err := base64.StdEncoding.DecodeString(lt.Data["UserData"])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: " + awstest.Cluster, "apiServerEndpoint: https://api.unit.example", "team=ml"} {
		if !strings.Contains(string(ud), want) {
			t.Errorf("user data lacks %q:\n%s", want, ud)
		}
	}
}

func TestBottlerocketTemplateKeepsTheImagesRootDevice(t *testing.T) {
	e := newEnv(t, v1alpha1.AMIFamilyBottlerocket)
	lt := e.ensure(t, nil, "ami-nvarm", "", false)
	// The OS volume on the image's root device, the 200Gi data volume on
	// /dev/xvdb.
	if diff := cmp.Diff([]string{"/dev/sda1", "", "/dev/xvdb", "200"}, []string{lt.Data["BlockDeviceMapping.1.DeviceName"], lt.Data["BlockDeviceMapping.1.Ebs.VolumeSize"],
		lt.Data["BlockDeviceMapping.2.DeviceName"], lt.Data["BlockDeviceMapping.2.Ebs.VolumeSize"]}); diff != "" {
		t.Errorf("block devices (-want +got):\n%s", diff)
	}
}

func TestReservationTemplates(t *testing.T) {
	e := newEnv(t, v1alpha1.AMIFamilyAL2023)
	odcr := e.ensure(t, nil, "ami-nvx86", "cr-odcr", false)
	block := e.ensure(t, nil, "ami-nvx86", "cr-block", true)
	if odcr.Name == block.Name {
		t.Fatal("two reservations share a template")
	}
	for _, tc := range []struct {
		lt               fakeaws.LaunchTemplate
		reservation, mkt string
	}{{odcr, "cr-odcr", ""}, {block, "cr-block", "capacity-block"}} {
		if got := tc.lt.Data["CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"]; got != tc.reservation {
			t.Errorf("%s targets %q, want %q", tc.lt.Name, got, tc.reservation)
		}
		if got := tc.lt.Data["InstanceMarketOptions.MarketType"]; got != tc.mkt {
			t.Errorf("%s market type %q, want %q", tc.lt.Name, got, tc.mkt)
		}
	}
}

func TestEnsureIsCachedAndRecreatesDeletedTemplates(t *testing.T) {
	e := newEnv(t, v1alpha1.AMIFamilyAL2023)
	calls := func() (describe, create int) {
		return len(e.srv.Requests("DescribeLaunchTemplates")), len(e.srv.Requests("CreateLaunchTemplate"))
	}
	expect := func(what string, describe, create int) {
		t.Helper()
		if d, c := calls(); d != describe || c != create {
			t.Errorf("%s: %d describe, %d create calls; want %d, %d", what, d, c, describe, create)
		}
	}
	first := e.ensure(t, nil, "ami-nvx86", "", false)
	expect("first Ensure", 1, 1)
	if again := e.ensure(t, nil, "ami-nvx86", "", false); again.Name != first.Name {
		t.Fatalf("same spec, new template %s (was %s)", again.Name, first.Name)
	}
	expect("cached Ensure", 1, 1)
	e.clock.Step(11 * time.Minute)
	e.ensure(t, nil, "ami-nvx86", "", false)
	expect("Ensure after the TTL", 2, 1)
	e.srv.DeleteLaunchTemplates()
	spec, _ := e.p.Spec(e.nc, nil, "ami-nvx86", "", false)
	e.p.Forget(spec.Name())
	e.ensure(t, nil, "ami-nvx86", "", false)
	expect("Ensure after Forget of a deleted template", 3, 2)
	if other := e.ensure(t, nil, "ami-nvarm", "", false); other.Name == first.Name {
		t.Error("another image, same template")
	}
}
