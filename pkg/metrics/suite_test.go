package metrics_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	fakefleet "github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/coresuite"
)

// The fleet metrics controller's own suite, against Karpenter core's test
// environment (a real kube-apiserver and etcd from bin/k8s) and the real
// cloud provider over the fake fleet (embedded catalog prices), as the
// controller binary wires it.
var (
	ctx  context.Context
	env  *test.Environment
	cp   *gpucp.CloudProvider
	ctrl *metrics.Controller
)

func TestMetricsSuite(t *testing.T) { controlplane.RunSuite(t, &ctx, "metrics") }

var _ = controlplane.EnvironmentSuite(&ctx, &env, func() {
	cp = coresuite.CloudProvider(env, fakefleet.NewFleet(fakefleet.Options{Clock: env.Clock, Seed: 1}), "envtest")
	ctrl = metrics.NewController(metrics.Options{Clock: env.Clock, KubeClient: env.Client, CloudProvider: cp})
})

// node is a launched GPU node: its NodeClaim and, when registered, its Node.
type node struct {
	name, instanceType, zone string
	gpus                     int64
	registered, unlaunched   bool
	group                    string // node class group; default GPUNodeClass's
}

func (n node) apply(pool *karpv1.NodePool) (*karpv1.NodeClaim, *corev1.Node) {
	GinkgoHelper()
	labels := map[string]string{karpv1.NodePoolLabelKey: pool.Name, corev1.LabelInstanceTypeStable: n.instanceType, corev1.LabelTopologyZone: n.zone,
		karpv1.CapacityTypeLabelKey: karpv1.CapacityTypeOnDemand}
	if n.gpus > 0 {
		labels[v1alpha1.LabelGPUName] = "l4"
	}
	gpus := corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(n.gpus, resource.DecimalSI)}
	claim := test.NodeClaim(karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels},
		Spec: karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{
			Group: lo.CoalesceOrEmpty(n.group, v1alpha1.Group), Kind: "GPUNodeClass", Name: pool.Spec.Template.Spec.NodeClassRef.Name}},
		Status: karpv1.NodeClaimStatus{Capacity: gpus},
	})
	// test.NodeClaim makes up a provider ID when none is given.
	claim.Status.ProviderID = lo.Ternary(n.unlaunched, "", "fake:///"+n.name)
	ExpectApplied(ctx, env.Client, claim)
	if !n.registered {
		return claim, nil
	}
	nd := test.Node(test.NodeOptions{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels}, ProviderID: "fake:///" + n.name, Allocatable: gpus, Capacity: gpus})
	ExpectApplied(ctx, env.Client, nd)
	return claim, nd
}

// gpuPod is a pod bound to a node requesting gpus NVIDIA GPUs (as a limit
// only, when limitOnly), in a phase.
func gpuPod(namespace, nodeName string, gpus int64, limitOnly bool, phase corev1.PodPhase) *corev1.Pod {
	q := *resource.NewQuantity(gpus, resource.DecimalSI)
	rr := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if gpus > 0 {
		rr.Limits[v1alpha1.ResourceNVIDIAGPU] = q
		if !limitOnly {
			rr.Requests[v1alpha1.ResourceNVIDIAGPU] = q
		}
	}
	p := test.Pod(test.PodOptions{ObjectMeta: metav1.ObjectMeta{Namespace: namespace}, NodeName: nodeName, ResourceRequirements: rr, Phase: phase})
	return p
}

// price is the cloud provider's on-demand price of an instance type in a
// zone, as the controller should find it.
func price(pool *karpv1.NodePool, instanceType, zone string) float64 {
	GinkgoHelper()
	its, err := cp.GetInstanceTypes(ctx, pool)
	Expect(err).ToNot(HaveOccurred())
	it, ok := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == instanceType })
	Expect(ok).To(BeTrue(), "instance type %s", instanceType)
	o, ok := lo.Find(it.Offerings, func(o *karpcp.Offering) bool {
		return o.Zone() == zone && o.CapacityType() == karpv1.CapacityTypeOnDemand
	})
	Expect(ok).To(BeTrue(), "offering %s/%s", instanceType, zone)
	Expect(o.Price).To(BeNumerically(">", 0))
	return o.Price
}

var _ = Describe("Fleet metrics", func() {
	var pool *karpv1.NodePool
	od := karpv1.CapacityTypeOnDemand
	BeforeEach(func() {
		nc := controlplane.GPUNodeClass()
		pool = controlplane.NodePool(nc)
		ExpectApplied(ctx, env.Client, nc, pool,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}})
	})

	It("prices the launched nodes of GPUNodeClass NodePools and splits their cost by the GPUs pods use", func() {
		_, big := node{name: "big", instanceType: "g6.12xlarge", zone: "us-east-1a", gpus: 4, registered: true}.apply(pool)
		node{name: "small", instanceType: "g6.xlarge", zone: "us-east-1b", gpus: 1}.apply(pool)                               // launched, not registered
		node{name: "pending", instanceType: "g6.xlarge", zone: "us-east-1a", gpus: 1, unlaunched: true}.apply(pool)           // not billed
		node{name: "foreign", instanceType: "g6.xlarge", zone: "us-east-1a", gpus: 1, group: "karpenter.k8s.aws"}.apply(pool) // another provider's
		node{name: "cpu", instanceType: "m7i.nonexistent", zone: "us-east-1a", registered: true}.apply(pool)                  // no price
		ExpectApplied(ctx, env.Client,
			gpuPod("team-a", big.Name, 2, false, corev1.PodRunning),
			gpuPod("team-b", big.Name, 1, true, corev1.PodRunning),
			gpuPod("team-b", big.Name, 1, false, corev1.PodSucceeded), // done: uses nothing
			gpuPod("team-b", big.Name, 0, false, corev1.PodRunning),   // CPU only
		)

		res := ExpectSingletonReconciled(ctx, ctrl)
		Expect(res.RequeueAfter).To(Equal(metrics.PollInterval))

		bigPrice, smallPrice := price(pool, "g6.12xlarge", "us-east-1a"), price(pool, "g6.xlarge", "us-east-1b")
		l4 := []string{pool.Name, "l4", od}
		Expect(testutil.ToFloat64(metrics.FleetCostPerHour.WithLabelValues(l4...))).To(BeNumerically("~", bigPrice+smallPrice, 1e-9))
		Expect(testutil.ToFloat64(metrics.FleetNodes.WithLabelValues(l4...))).To(Equal(2.0))
		Expect(testutil.ToFloat64(metrics.GPUsPaid.WithLabelValues(l4...))).To(Equal(5.0))
		Expect(testutil.ToFloat64(metrics.GPUsRequested.WithLabelValues(l4...))).To(Equal(3.0))
		Expect(testutil.ToFloat64(metrics.NamespaceGPUCostPerHour.WithLabelValues("team-a"))).To(BeNumerically("~", 2*bigPrice/4, 1e-9))
		Expect(testutil.ToFloat64(metrics.NamespaceGPUCostPerHour.WithLabelValues("team-b"))).To(BeNumerically("~", bigPrice/4, 1e-9))
		Expect(testutil.ToFloat64(metrics.FleetUnpricedNodes.WithLabelValues(pool.Name))).To(Equal(1.0))
		Expect(testutil.ToFloat64(metrics.FleetNodes.WithLabelValues(pool.Name, metrics.NoGPU, od))).To(Equal(1.0))
		// Nothing for the unlaunched or foreign NodeClaims.
		Expect(testutil.CollectAndCount(metrics.FleetNodes)).To(Equal(2))
		Expect(testutil.CollectAndCount(metrics.NamespaceGPUCostPerHour)).To(Equal(2))
	})

	It("drops the series of nodes that went away", func() {
		bigClaim, big := node{name: "big", instanceType: "g6.12xlarge", zone: "us-east-1a", gpus: 4, registered: true}.apply(pool)
		node{name: "small", instanceType: "g6.xlarge", zone: "us-east-1b", gpus: 1}.apply(pool)
		ExpectApplied(ctx, env.Client, gpuPod("team-a", big.Name, 4, false, corev1.PodRunning))
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(testutil.CollectAndCount(metrics.NamespaceGPUCostPerHour)).To(Equal(1))

		ExpectDeleted(ctx, env.Client, bigClaim, big)
		ExpectSingletonReconciled(ctx, ctrl)
		l4 := []string{pool.Name, "l4", od}
		Expect(testutil.ToFloat64(metrics.FleetCostPerHour.WithLabelValues(l4...))).To(BeNumerically("~", price(pool, "g6.xlarge", "us-east-1b"), 1e-9))
		Expect(testutil.ToFloat64(metrics.GPUsPaid.WithLabelValues(l4...))).To(Equal(1.0))
		// An idle fleet still reports 0 requested GPUs, so ratios exist.
		Expect(testutil.ToFloat64(metrics.GPUsRequested.WithLabelValues(l4...))).To(Equal(0.0))
		Expect(testutil.CollectAndCount(metrics.NamespaceGPUCostPerHour)).To(Equal(0))
	})

	It("prices the nodes of a deleted NodePool with the default instance types", func() {
		node{name: "orphan", instanceType: "g6.xlarge", zone: "us-east-1a", gpus: 1, registered: true}.apply(pool)
		want := price(pool, "g6.xlarge", "us-east-1a")
		ExpectDeleted(ctx, env.Client, pool)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(testutil.ToFloat64(metrics.FleetCostPerHour.WithLabelValues(pool.Name, "l4", od))).To(BeNumerically("~", want, 1e-9))
		Expect(testutil.CollectAndCount(metrics.FleetUnpricedNodes)).To(Equal(0))
	})
})
