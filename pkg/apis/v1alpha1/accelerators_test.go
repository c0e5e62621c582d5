package v1alpha1_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

func list(kv ...any) corev1.ResourceList {
	rl := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		rl[corev1.ResourceName(kv[i].(string))] = resource.MustParse(kv[i+1].(string))
	}
	return rl
}

func ctr(name string, req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

// TestPodAccelerators pins the one accelerator rule: counted from effective
// requests as kube-scheduler does (init-container ceiling, sidecars,
// overhead), a limit standing for a missing request, every accelerator
// resource and nothing else.
func TestPodAccelerators(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := ctr("sidecar", list(v1alpha1.ResourceNVIDIAGPU, "1"), list(v1alpha1.ResourceNVIDIAGPU, "1"))
	sidecar.RestartPolicy = &always
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want int64
	}{
		{"no resources", corev1.PodSpec{Containers: []corev1.Container{ctr("a", nil, nil)}}, 0},
		{"cpu and memory only", corev1.PodSpec{Containers: []corev1.Container{ctr("a", list("cpu", "4", "memory", "8Gi"), nil)}}, 0},
		{"request equals limit", corev1.PodSpec{Containers: []corev1.Container{
			ctr("a", list(v1alpha1.ResourceNVIDIAGPU, "2"), list(v1alpha1.ResourceNVIDIAGPU, "2"))}}, 2},
		{"limit only counts as the request (API server default)", corev1.PodSpec{Containers: []corev1.Container{
			ctr("a", nil, list(v1alpha1.ResourceNVIDIAGPU, "3"))}}, 3},
		{"request only", corev1.PodSpec{Containers: []corev1.Container{ctr("a", list(v1alpha1.ResourceAMDGPU, "1"), nil)}}, 1},
		{"zero request is no accelerator", corev1.PodSpec{Containers: []corev1.Container{
			ctr("a", list(v1alpha1.ResourceNVIDIAGPU, "0"), list(v1alpha1.ResourceNVIDIAGPU, "0"))}}, 0},
		{"containers sum", corev1.PodSpec{Containers: []corev1.Container{
			ctr("a", list(v1alpha1.ResourceNVIDIAGPU, "1"), list(v1alpha1.ResourceNVIDIAGPU, "1")),
			ctr("b", list(v1alpha1.ResourceNVIDIAGPU, "2"), list(v1alpha1.ResourceNVIDIAGPU, "2"))}}, 3},
		{"init container ceiling", corev1.PodSpec{
			InitContainers: []corev1.Container{ctr("init", list(v1alpha1.ResourceNVIDIAGPU, "4"), list(v1alpha1.ResourceNVIDIAGPU, "4"))},
			Containers: []corev1.Container{
				ctr("a", list(v1alpha1.ResourceNVIDIAGPU, "1"), list(v1alpha1.ResourceNVIDIAGPU, "1")),
				ctr("b", list(v1alpha1.ResourceNVIDIAGPU, "2"), list(v1alpha1.ResourceNVIDIAGPU, "2"))}}, 4},
		{"init container only", corev1.PodSpec{
			InitContainers: []corev1.Container{ctr("init", list(v1alpha1.ResourceNVIDIAGPU, "1"), list(v1alpha1.ResourceNVIDIAGPU, "1"))},
			Containers:     []corev1.Container{ctr("a", list("cpu", "1"), nil)}}, 1},
		{"sidecar adds to the app containers", corev1.PodSpec{
			InitContainers: []corev1.Container{sidecar},
			Containers:     []corev1.Container{ctr("a", list(v1alpha1.ResourceNVIDIAGPU, "1"), list(v1alpha1.ResourceNVIDIAGPU, "1"))}}, 2},
		{"every accelerator resource counts", corev1.PodSpec{Containers: []corev1.Container{
			ctr("a", list(v1alpha1.ResourceNVIDIAGPU, "1", v1alpha1.ResourceAMDGPU, "1", v1alpha1.ResourceNeuron, "1", v1alpha1.ResourceGaudi, "1"), nil)}}, 4},
		{"other extended resources do not", corev1.PodSpec{Containers: []corev1.Container{
			ctr("a", list(v1alpha1.ResourceEFA, "1", "nvidia.com/mig-1g.5gb", "1", "example.com/foo", "2"), nil)}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: tc.spec}
			if got := v1alpha1.PodAccelerators(p); got != tc.want {
				t.Errorf("PodAccelerators = %d, want %d", got, tc.want)
			}
			if got := v1alpha1.UsesAccelerator(p); got != (tc.want > 0) {
				t.Errorf("UsesAccelerator = %v, want %v", got, tc.want > 0)
			}
		})
	}
}

func TestAccelerators(t *testing.T) {
	for _, tc := range []struct {
		name string
		rl   corev1.ResourceList
		want int64
	}{
		{"nil", nil, 0},
		{"cpu node", list("cpu", "8", "memory", "32Gi", v1alpha1.ResourceEFA, "1"), 0},
		{"nvidia", list("cpu", "8", v1alpha1.ResourceNVIDIAGPU, "8"), 8},
		{"neuron", list(v1alpha1.ResourceNeuron, "16"), 16},
		{"mixed", list(v1alpha1.ResourceAMDGPU, "2", v1alpha1.ResourceGaudi, "8"), 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := v1alpha1.Accelerators(tc.rl); got != tc.want {
				t.Errorf("Accelerators = %d, want %d", got, tc.want)
			}
		})
	}
	for _, r := range v1alpha1.AcceleratorResources {
		if !v1alpha1.IsAcceleratorResource(r) {
			t.Errorf("IsAcceleratorResource(%s) = false", r)
		}
	}
	if v1alpha1.IsAcceleratorResource(v1alpha1.ResourceEFA) {
		t.Error("IsAcceleratorResource(EFA) = true")
	}
}
