package provisioningrequest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	clock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakecr "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/fake"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/operator/logging"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

func init() {
	log.SetLogger(logging.NopLogger)
}

// env is the controller over an in-memory API (controller-runtime's fake
// client) with the embedded catalog behind Karpenter's fake cloud provider,
// as pkg/controllers/provisioning's unit tests run the provisioning loop.
// The NodeClaim lifecycle is played by the test (launch, register, delete);
// test/gang runs the same flows on a real API server with core's lifecycle
// controller and the fake fleet.
type env struct {
	ctx     context.Context
	kube    client.Client
	clk     *clock.FakeClock
	cluster *state.Cluster
	ctrl    *pr.Controller
	cp      *fake.CloudProvider
	seq     int
}

func newEnv(t testing.TB, opts pr.Options) *env {
	t.Helper()
	ctx := options.ToContext(context.Background(), test.Options())
	kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithStatusSubresource(&karpv1.NodePool{}, &karpv1.NodeClaim{}, &autoscalingv1.ProvisioningRequest{}).Build()
	cp := fake.NewCloudProvider()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	cp.InstanceTypes, _ = catalog.NewInstanceTypes(entries, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})
	clk := clock.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := &env{ctx: ctx, kube: kube, clk: clk, cluster: state.NewCluster(clk, kube, cp), cp: cp}
	np := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}})
	np.Spec.Limits = nil
	np.Spec.Template.Spec.Requirements = []karpv1.NodeSelectorRequirementWithMinValues{{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}}}
	np.StatusConditions().SetTrue(status.ConditionReady)
	st := np.Status
	e.must(t, kube.Create(ctx, np))
	np.Status = st
	e.must(t, kube.Status().Update(ctx, np))
	e.ctrl = e.newController(opts)
	return e
}

// newController is the controller over the env's client, clock, cloud
// provider and cluster state.
func (e *env) newController(opts pr.Options) *pr.Controller {
	opts.Clock, opts.KubeClient, opts.CloudProvider, opts.Cluster, opts.Recorder = e.clk, e.kube, e.cp, e.cluster, events.NewRecorder(&record.FakeRecorder{})
	return pr.NewController(opts)
}

func (e *env) must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// request creates a PodTemplate of count workers with gpus GPUs each (on
// 8-GPU nodes for 8-GPU workers) and a request of class for them.
func (e *env) request(t testing.TB, class string, gpus int64, count int32) *autoscalingv1.ProvisioningRequest {
	t.Helper()
	sel := map[string]string{}
	if gpus == 8 {
		sel[v1alpha1.LabelGPUCount] = "8"
	}
	e.seq++
	name := fmt.Sprintf("job-%d", e.seq)
	tmpl := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		NodeSelector: sel,
		Tolerations:  []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists}},
		Containers: []corev1.Container{{Name: "w", Image: "x", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}}}}}}}
	e.must(t, e.kube.Create(e.ctx, tmpl))
	req := &autoscalingv1.ProvisioningRequest{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: autoscalingv1.ProvisioningRequestSpec{ProvisioningClassName: class, PodSets: []autoscalingv1.PodSet{{PodTemplateRef: autoscalingv1.Reference{Name: name}, Count: count}}}}
	e.must(t, e.kube.Create(e.ctx, req))
	return req
}

// reconcile runs the controller on the request's latest copy and returns it.
func (e *env) reconcile(t testing.TB, req *autoscalingv1.ProvisioningRequest) *autoscalingv1.ProvisioningRequest {
	t.Helper()
	cur := &autoscalingv1.ProvisioningRequest{}
	e.must(t, e.kube.Get(e.ctx, client.ObjectKeyFromObject(req), cur))
	if _, err := e.ctrl.Reconcile(e.ctx, cur); err != nil {
		t.Fatal(err)
	}
	e.must(t, e.kube.Get(e.ctx, client.ObjectKeyFromObject(req), cur))
	return cur
}

func (e *env) claims(t testing.TB, req *autoscalingv1.ProvisioningRequest) []karpv1.NodeClaim {
	t.Helper()
	list := &karpv1.NodeClaimList{}
	e.must(t, e.kube.List(e.ctx, list, client.MatchingLabels{pr.LabelRequest: string(req.UID)}))
	return list.Items
}

// register marks NodeClaims launched and registered, as core's lifecycle
// does once their nodes join.
func (e *env) register(t testing.TB, claims ...karpv1.NodeClaim) {
	t.Helper()
	for i := range claims {
		nc := claims[i].DeepCopy()
		nc.StatusConditions().SetTrue(karpv1.ConditionTypeLaunched)
		nc.StatusConditions().SetTrue(karpv1.ConditionTypeRegistered)
		e.must(t, e.kube.Status().Update(e.ctx, nc))
	}
}

func cond(req *autoscalingv1.ProvisioningRequest, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(req.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ}
}
