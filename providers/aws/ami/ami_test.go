package ami_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/ami"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instancetype"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
)

type env struct {
	srv     *fakeaws.Server
	clock   *clocktesting.FakeClock
	p       *ami.Provider
	entries []catalog.Entry
}

func newEnv(t *testing.T, inv fakeaws.Inventory, k8sVersion string) *env {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	srv := awstest.Server(t, inv)
	clients := awstest.Clients(t, srv)
	clk := clocktesting.NewFakeClock(awstest.Epoch)
	// The catalog names the Neuron devices (no discovery: no API call).
	types := instancetype.NewProvider(instancetype.Options{Entries: entries, DisableDiscovery: true, Clock: clk})
	p := ami.NewProvider(ami.Options{EC2: clients.EC2, SSM: clients.SSM, KubernetesVersion: k8sVersion, InstanceTypes: types,
		Clock: clk, Refresh: time.Hour, RefreshRetry: time.Minute, CallTimeout: 5 * time.Second})
	return &env{srv: srv, clock: clk, p: p, entries: entries}
}

func (e *env) entry(t *testing.T, name string) *catalog.Entry {
	t.Helper()
	en, ok := lo.Find(e.entries, func(en catalog.Entry) bool { return en.Name == name })
	if !ok {
		t.Fatalf("%s is not in the catalog", name)
	}
	return &en
}

func ids(amis []v1alpha1.AMI) []string {
	return lo.Map(amis, func(a v1alpha1.AMI, _ int) string { return a.ID })
}

func TestDefaultAliasResolvesEveryVariant(t *testing.T) {
	e := newEnv(t, awstest.Inventory(), "1.33")
	nc := awstest.NodeClass()
	amis, reason, err := e.p.List(context.Background(), nc)
	if err != nil || reason != "" {
		t.Fatalf("List: %v, %q", err, reason)
	}
	// NVIDIA amd64/arm64, Neuron amd64, standard amd64 (no standard arm64
	// parameter is published in the inventory).
	if diff := cmp.Diff([]string{"ami-nvx86", "ami-nvarm", "ami-neuron", "ami-stdx86"}, ids(amis)); diff != "" {
		t.Fatalf("images (-want +got):\n%s", diff)
	}
	if amis[0].Name != "al2023-x86_64-nvidia" {
		t.Errorf("name of %s = %q, want DescribeImages' name", amis[0].ID, amis[0].Name)
	}
	if diff := cmp.Diff([]corev1.NodeSelectorRequirement{
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
		{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}},
	}, amis[0].Requirements); diff != "" {
		t.Errorf("NVIDIA image requirements (-want +got):\n%s", diff)
	}
	nc.Status.AMIs = amis
	// Each type launches with the image of its accelerator and arch.
	for typ, want := range map[string]string{"g4dn.xlarge": "ami-nvx86", "g5g.xlarge": "ami-nvarm", "inf2.xlarge": "ami-neuron"} {
		got, ok := ami.For(nc, e.entry(t, typ))
		if !ok || got.ID != want {
			t.Errorf("For(%s) = %s %v, want %s", typ, got.ID, ok, want)
		}
	}
	cpu := &catalog.Entry{Name: "m5.large", Family: "m5", Arch: "amd64"}
	if got, ok := ami.For(nc, cpu); !ok || got.ID != "ami-stdx86" {
		t.Errorf("For(m5.large) = %s %v, want the standard image", got.ID, ok)
	}
	if got, ok := ami.For(nc, &catalog.Entry{Name: "m7g.large", Family: "m7g", Arch: "arm64"}); ok {
		t.Errorf("For(arm64 CPU type) = %s, want none (no standard arm64 image)", got.ID)
	}
	if rd := e.p.RootDevice("ami-nvarm"); rd != "/dev/sda1" {
		t.Errorf("RootDevice(ami-nvarm) = %q, want /dev/sda1", rd)
	}
	// SSM parameters are cached: a second List asks SSM nothing.
	before := len(e.srv.Requests("GetParameter"))
	if before != 5 {
		t.Fatalf("%d SSM calls, want one per variant (5, the unpublished one included)", before)
	}
	if _, _, err := e.p.List(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.Requests("GetParameter")) - before; n != 0 {
		t.Errorf("second List made %d SSM calls, want 0", n)
	}
}

func TestSelectorTermsTakeTheNewestImagePerArch(t *testing.T) {
	inv := awstest.Inventory()
	team := map[string]string{"team": "ml"}
	inv.Images = append(inv.Images,
		fakeaws.Image{ID: "ami-old", Name: "team-gpu-1", Arch: "x86_64", Created: awstest.Epoch.Add(-48 * time.Hour), Tags: team},
		fakeaws.Image{ID: "ami-new", Name: "team-gpu-2", Arch: "x86_64", Created: awstest.Epoch.Add(-time.Hour), Tags: team},
		fakeaws.Image{ID: "ami-arm", Name: "team-gpu-arm", Arch: "arm64", Created: awstest.Epoch.Add(-72 * time.Hour), Tags: team},
		fakeaws.Image{ID: "ami-gone", Name: "team-gpu-3", Arch: "x86_64", Created: awstest.Epoch, Tags: team, State: "deregistered"},
	)
	e := newEnv(t, inv, "")
	for _, tc := range []struct {
		name  string
		terms []v1alpha1.AMISelectorTerm
		want  []string
	}{
		{"tags", []v1alpha1.AMISelectorTerm{{Tags: team}}, []string{"ami-new", "ami-arm"}},
		{"name wildcard", []v1alpha1.AMISelectorTerm{{Name: "team-gpu-1"}}, []string{"ami-old"}},
		{"ID", []v1alpha1.AMISelectorTerm{{ID: "ami-old"}}, []string{"ami-old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := awstest.NodeClass()
			nc.Spec.AMISelectorTerms = tc.terms
			amis, reason, err := e.p.List(context.Background(), nc)
			if err != nil || reason != "" {
				t.Fatalf("List: %v, %q", err, reason)
			}
			if diff := cmp.Diff(tc.want, ids(amis)); diff != "" {
				t.Errorf("images (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnresolvableImagesHaveAReason(t *testing.T) {
	for _, tc := range []struct {
		name, k8sVersion string
		mod              func(*v1alpha1.GPUNodeClass)
	}{
		{"Custom without terms", "1.33", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.AMIFamily = v1alpha1.AMIFamilyCustom }},
		{"alias without a Kubernetes version", "", func(*v1alpha1.GPUNodeClass) {}},
		{"alias of an unpublished version", "1.99", func(*v1alpha1.GPUNodeClass) {}},
		{"no image matches", "1.33", func(nc *v1alpha1.GPUNodeClass) {
			nc.Spec.AMISelectorTerms = []v1alpha1.AMISelectorTerm{{Tags: map[string]string{"team": "nobody"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, awstest.Inventory(), tc.k8sVersion)
			nc := awstest.NodeClass()
			tc.mod(nc)
			amis, reason, err := e.p.List(context.Background(), nc)
			if err != nil || len(amis) != 0 || reason == "" {
				t.Fatalf("List = %v, %q, %v; want no image, a reason, no error", ids(amis), reason, err)
			}
		})
	}
}

func TestSSMFailureIsAnErrorThenRetried(t *testing.T) {
	e := newEnv(t, awstest.Inventory(), "1.33")
	e.srv.Fail("GetParameter", "AccessDeniedException", "injected", 100)
	if _, _, err := e.p.List(context.Background(), awstest.NodeClass()); err == nil {
		t.Fatal("List succeeded although SSM failed")
	}
	e.srv.ClearFaults()
	// The failure is remembered until the retry interval passes.
	if _, _, err := e.p.List(context.Background(), awstest.NodeClass()); err == nil {
		t.Fatal("List asked SSM again before the retry interval")
	}
	e.clock.Step(time.Minute)
	amis, _, err := e.p.List(context.Background(), awstest.NodeClass())
	if err != nil || len(amis) == 0 {
		t.Fatalf("List after the retry interval = %v, %v", ids(amis), err)
	}
}
