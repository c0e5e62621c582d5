package provisioning_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	clock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakecr "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/fake"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/operator/injection"
	"sigs.k8s.io/karpenter/pkg/operator/logging"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
)

func init() {
	log.SetLogger(logging.NopLogger)
}

const gpu = corev1.ResourceName(v1alpha1.ResourceNVIDIAGPU)

// env is core's provisioner and cluster state over an in-memory API (the
// fake client with the pod index core lists pending pods by), with the
// embedded catalog behind Karpenter's fake cloud provider.
type env struct {
	ctx     context.Context
	kube    client.Client
	cp      *fake.CloudProvider
	cluster *state.Cluster
	prov    *coreprov.Provisioner
	refiner *provisioning.Packer
	rec     events.Recorder
	clk     *clock.FakeClock
	seq     int
}

func newEnv(t testing.TB, pools ...*karpv1.NodePool) *env {
	t.Helper()
	ctx := options.ToContext(injection.WithControllerName(context.Background(), "provisioner"), test.Options())
	kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithStatusSubresource(&karpv1.NodePool{}, &karpv1.NodeClaim{}).Build()
	cp := fake.NewCloudProvider()
	cp.InstanceTypes = catalogTypes(t)
	e := &env{ctx: ctx, kube: kube, cp: cp, clk: clock.NewFakeClock(metav1.Now().Time), rec: events.NewRecorder(&record.FakeRecorder{})}
	e.cluster = state.NewCluster(e.clk, kube, cp)
	e.prov = coreprov.NewProvisioner(kube, e.rec, cp, e.cluster, e.clk, nil, nil)
	e.refiner = provisioning.NewPacker(provisioning.PackerOptions{KubeClient: kube, CloudProvider: cp, Cluster: e.cluster, KeepDecisions: true})
	for _, np := range pools {
		np.StatusConditions().SetTrue(status.ConditionReady)
		st := np.Status
		if err := kube.Create(ctx, np); err != nil {
			t.Fatal(err)
		}
		np.Status = st
		if err := kube.Status().Update(ctx, np); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// controller returns the provisioning loop; directMinPods < 0 disables the
// direct path (core's Schedule, then Refine).
func (e *env) controller(directMinPods int) *provisioning.Controller {
	return provisioning.NewController(provisioning.Options{Clock: e.clk, KubeClient: e.kube, Recorder: e.rec,
		Provisioner: e.prov, Cluster: e.cluster, Refiner: e.refiner, DirectMinPods: directMinPods})
}

func (e *env) addPods(t testing.TB, pods ...*corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		if err := e.kube.Create(e.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}

// pod is a pending pod (PodScheduled=False, Unschedulable) requesting cpu,
// memory and, when gpus > 0, nvidia.com/gpu with the GPU toleration.
func (e *env) pod(cpuMilli, memMiB, gpus int64, mutate ...func(*corev1.Pod)) *corev1.Pod {
	e.seq++
	req := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memMiB<<20, resource.BinarySI),
	}
	lim := corev1.ResourceList{}
	var tol []corev1.Toleration
	if gpus > 0 {
		req[gpu] = *resource.NewQuantity(gpus, resource.DecimalSI)
		lim[gpu] = req[gpu]
		tol = []corev1.Toleration{{Key: string(gpu), Operator: corev1.TolerationOpExists}}
	}
	p := &corev1.Pod{
		// Core's scheduling queue tells pods apart by UID, which the fake
		// client does not assign.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", e.seq), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%05d", e.seq))},
		Spec: corev1.PodSpec{Tolerations: tol, Containers: []corev1.Container{{Name: "c", Image: "x",
			Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// launch makes the NodeClaims of results in-flight capacity, as core's
// lifecycle controller would after a launch: created, with the cheapest
// option's capacity and allocatable in status, in cluster state.
func (e *env) launch(t testing.TB, results scheduling.Results) {
	t.Helper()
	for i, nc := range results.NewNodeClaims {
		obj := nc.ToNodeClaim()
		obj.Name = fmt.Sprintf("nc-%d-%d", e.seq, i)
		it := nc.InstanceTypeOptions[0]
		obj.Status.ProviderID = "fake:///" + obj.Name
		obj.Status.Capacity = it.Capacity
		obj.Status.Allocatable = it.Allocatable()
		obj.Labels[corev1.LabelInstanceTypeStable] = it.Name
		if err := e.kube.Create(e.ctx, obj); err != nil {
			t.Fatal(err)
		}
		e.cluster.UpdateNodeClaim(obj)
	}
	e.seq++
}

// catalogTypes is the embedded catalog in us-east-1, on-demand.
func catalogTypes(t testing.TB) []*cloudprovider.InstanceType {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	its, _ := catalog.NewInstanceTypes(entries, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a", "us-east-1b"},
		CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})
	return its
}

// gpuPool is an amd64 NVIDIA pool with the GPU taint.
func gpuPool(name string, weight int32, extra ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	np := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	np.Spec.Weight = &weight
	np.Spec.Limits = nil
	np.Spec.Template.Spec.Taints = []corev1.Taint{{Key: string(gpu), Effect: corev1.TaintEffectNoSchedule}}
	np.Spec.Template.Spec.Requirements = append([]karpv1.NodeSelectorRequirementWithMinValues{
		{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}},
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
	}, extra...)
	return np
}

// cpuPool is an untainted pool of the catalog's types without NVIDIA GPUs
// (the catalog is accelerated types only), so GPU pods cannot share it.
func cpuPool(name string) *karpv1.NodePool {
	np := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	np.Spec.Limits = nil
	np.Spec.Template.Spec.Requirements = []karpv1.NodeSelectorRequirementWithMinValues{
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
		{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpNotIn, Values: []string{"nvidia"}},
	}
	return np
}

// cost is the $/h of NodeClaims, each at its cheapest launchable offering.
func cost(ncs []*scheduling.NodeClaim) float64 {
	total := 0.0
	for _, nc := range ncs {
		best := math.Inf(1)
		for _, it := range nc.InstanceTypeOptions {
			for _, o := range it.Offerings.Available() {
				if nc.Requirements.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels) {
					best = math.Min(best, o.Price)
				}
			}
		}
		total += best
	}
	return total
}

// placed counts, per pod name, the NodeClaims and existing nodes it was put on.
func placed(r scheduling.Results) map[string]int {
	out := map[string]int{}
	for _, nc := range r.NewNodeClaims {
		for _, p := range nc.Pods {
			out[p.Name]++
		}
	}
	for _, n := range r.ExistingNodes {
		for _, p := range n.Pods {
			out[p.Name]++
		}
	}
	return out
}
