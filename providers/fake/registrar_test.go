package fake

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crfake "sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

func TestRegistrar(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	kube := crfake.NewClientBuilder().WithScheme(scheme.Scheme).WithStatusSubresource(&corev1.Node{}, &corev1.Pod{}, &karpv1.NodeClaim{}).Build()
	fleet := NewFleet(Options{Clock: clk, LaunchLatency: time.Minute})
	reg := NewRegistrar(RegistrarOptions{KubeClient: kube, Fleet: fleet, Clock: clk, RegistrationDelay: 90 * time.Second, PodStartDelay: 5 * time.Second})

	res, err := fleet.Launch(ctx, &cloudprovider.LaunchRequest{Options: []cloudprovider.LaunchOption{{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: "on-demand"}}})
	if err != nil || res.Instance == nil {
		t.Fatalf("launch: %v", err)
	}
	gpu := resource.MustParse("1")
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu-abc", Labels: map[string]string{
			corev1.LabelInstanceTypeStable: "g4dn.xlarge", corev1.LabelArchStable: "amd64", corev1.LabelOSStable: "linux", karpv1.NodePoolLabelKey: "gpu",
		}},
		Spec: karpv1.NodeClaimSpec{Taints: []corev1.Taint{{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}}},
		Status: karpv1.NodeClaimStatus{
			ProviderID:  fleet.ProviderID(res.Instance),
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), "nvidia.com/gpu": gpu},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3920m"), "nvidia.com/gpu": gpu},
		},
	}

	// Pending for 60s, then 90s of registration: nothing before 150s.
	for _, step := range []time.Duration{0, 149 * time.Second} {
		clk.SetTime(res.Instance.LaunchTime.Add(step))
		r, err := reg.Reconcile(ctx, nc)
		if err != nil {
			t.Fatal(err)
		}
		if want := 150*time.Second - step; r.RequeueAfter != want {
			t.Errorf("at %s: requeue after %s, want %s", step, r.RequeueAfter, want)
		}
		if err := kube.Get(ctx, client.ObjectKey{Name: nc.Name}, &corev1.Node{}); err == nil {
			t.Fatalf("node registered at %s, before 150s", step)
		}
	}
	clk.SetTime(res.Instance.LaunchTime.Add(150 * time.Second))
	if _, err := reg.Reconcile(ctx, nc); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{}
	if err := kube.Get(ctx, client.ObjectKey{Name: nc.Name}, node); err != nil {
		t.Fatalf("node not registered at 150s: %v", err)
	}
	if node.Spec.ProviderID != nc.Status.ProviderID {
		t.Errorf("provider ID %q, want %q", node.Spec.ProviderID, nc.Status.ProviderID)
	}
	if node.Labels[corev1.LabelInstanceTypeStable] != "g4dn.xlarge" || node.Labels[corev1.LabelHostname] != nc.Name {
		t.Errorf("labels %v", node.Labels)
	}
	if len(node.Spec.Taints) != 2 || !node.Spec.Taints[0].MatchTaint(&karpv1.UnregisteredNoExecuteTaint) || node.Spec.Taints[1].Key != "nvidia.com/gpu" {
		t.Errorf("taints %v, want the unregistered taint and the NodeClaim's", node.Spec.Taints)
	}
	if q := node.Status.Allocatable["nvidia.com/gpu"]; q.Value() != 1 {
		t.Errorf("allocatable %v, want nvidia.com/gpu 1", node.Status.Allocatable)
	}
	if len(node.Status.Conditions) != 1 || node.Status.Conditions[0].Type != corev1.NodeReady || node.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Errorf("conditions %v, want Ready", node.Status.Conditions)
	}

	// A pod bound to the node runs after the pod start delay.
	bound := metav1.NewTime(clk.Now())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: node.Name, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: bound}}},
	}
	if err := kube.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := kube.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if r, err := reg.ReconcilePod(ctx, pod); err != nil || r.RequeueAfter != 5*time.Second {
		t.Errorf("pod: requeue %v, %v; want after 5s", r, err)
	}
	clk.Step(5 * time.Second)
	if _, err := reg.ReconcilePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil || pod.Status.Phase != corev1.PodRunning {
		t.Errorf("pod phase %q (%v), want Running", pod.Status.Phase, err)
	}

	// A spot interruption (or any termination) under a registered node: the
	// kubelet stops posting status.
	if err := fleet.Terminate(ctx, res.Instance.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Reconcile(ctx, nc); err != nil {
		t.Fatal(err)
	}
	if err := kube.Get(ctx, client.ObjectKey{Name: nc.Name}, node); err != nil || node.Status.Conditions[0].Status != corev1.ConditionUnknown {
		t.Errorf("node Ready %v after termination (%v), want Unknown", node.Status.Conditions, err)
	}
}

// A node whose device plugin never reports registers without any of the
// accelerators (v1alpha1.AcceleratorResources) and with everything else.
func TestWithoutAccelerators(t *testing.T) {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), v1alpha1.ResourceEFA: resource.MustParse("1")}
	for _, r := range v1alpha1.AcceleratorResources {
		rl[r] = resource.MustParse("8")
	}
	got := withoutAccelerators(rl)
	if len(got) != 2 || got.Cpu().Value() != 4 || got.Name(v1alpha1.ResourceEFA, resource.DecimalSI).Value() != 1 {
		t.Errorf("withoutAccelerators = %v, want cpu and %s only", got, v1alpha1.ResourceEFA)
	}
	if len(rl) != 2+len(v1alpha1.AcceleratorResources) {
		t.Errorf("the input was changed: %v", rl)
	}
}
