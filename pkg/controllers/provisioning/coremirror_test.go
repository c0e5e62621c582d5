package provisioning_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// The daemonset overhead core's scheduler charges its NodeClaims is the one
// the packer charges from Packer.DaemonSetPods and pkg/packing, through
// pkg/coremirror's DaemonSetPods and DaemonOverheadGroups: a daemonset
// that runs on the GPU pool's nodes counts; one whose required node
// affinity (taken from the template, as core's getDaemonSetPods does)
// excludes them, or that does not tolerate the GPU taint, does not. This
// fails when core's behaviour differs from the mirrors'.
func TestCoreDaemonOverheadMirrored(t *testing.T) {
	e := newEnv(t, gpuPool("gpu", 0))
	daemonset := func(name, cpu string, spec func(*corev1.PodSpec)) {
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", UID: types.UID("uid-" + name)},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "d", Image: "x", Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("64Mi")}}}}}}}}
		spec(&ds.Spec.Template.Spec)
		if err := e.kube.Create(e.ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	tolerateAll := func(s *corev1.PodSpec) { s.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}} }
	daemonset("runs", "300m", tolerateAll)
	daemonset("arm-only", "700m", func(s *corev1.PodSpec) {
		tolerateAll(s)
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"arm64"}}}}}}}}
	})
	daemonset("untolerating", "1100m", func(*corev1.PodSpec) {})
	pods := []*corev1.Pod{e.pod(4000, 16384, 1), e.pod(2000, 8192, 1), e.pod(8000, 30000, 2)}
	e.addPods(t, pods...)
	wantCPU := resource.MustParse("300m")
	overheadCPU := func(nc *scheduling.NodeClaim) resource.Quantity {
		implied := resources.Subtract(nc.Spec.Resources.Requests, resources.RequestsForPods(nc.Pods...))
		return implied[corev1.ResourceCPU]
	}

	core, err := e.prov.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(core.NewNodeClaims) == 0 {
		t.Fatalf("core proposed no NodeClaim (pod errors %v)", core.PodErrors)
	}
	for _, nc := range core.NewNodeClaims {
		if got := overheadCPU(nc); got.Cmp(wantCPU) != 0 {
			t.Fatalf("core charges a NodeClaim %s CPU of daemonset overhead, want %s (only \"runs\"): the mirrors' premise changed", got.String(), wantCPU.String())
		}
	}

	opts, err := e.refiner.Inputs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.DaemonSetPods) != 3 {
		t.Fatalf("%d daemonset pods, want one per daemonset (3)", len(opts.DaemonSetPods))
	}
	plan := packing.PackPods(opts.NodePools[0], opts.InstanceTypes["gpu"], pods, opts)
	if len(plan.Rejected) > 0 || len(plan.NodeClaims) == 0 {
		t.Fatalf("PackPods rejected %v", plan.Rejected)
	}
	for _, nc := range plan.NodeClaims {
		if got := overheadCPU(nc); got.Cmp(wantCPU) != 0 {
			t.Errorf("the packer charges a NodeClaim %s CPU of daemonset overhead, core %s", got.String(), wantCPU.String())
		}
	}
	// Refine checks the same on core's own NodeClaims.
	e.refiner.Refine(e.ctx, core)
	for _, d := range e.refiner.Decisions() {
		for _, u := range d.Unchanged {
			if strings.Contains(u.Reason, "daemonset overhead") {
				t.Errorf("Refine kept core's NodeClaims: %s", u.Reason)
			}
		}
	}
}
