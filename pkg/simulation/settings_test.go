package simulation

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// A report says what it was run with: the kube-scheduler profile, and for
// the karpenter-gpu policy the node class's break-even settings with the
// defaults applied (a report of a sweep is then read without its command).
func TestSettingsEcho(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     Policy
		profile    kubescheduler.Profile
		disruption *v1alpha1.GPUDisruption
		want       report.Settings
	}{
		{name: "karpenter-gpu, defaults", policy: PolicyKarpenterGPU, profile: kubescheduler.ProfileDefault,
			want: report.Settings{SchedulerProfile: "default", GPUDisruption: &report.GPUDisruption{
				Protection: v1alpha1.DefaultProtection, BreakEvenPercent: v1alpha1.DefaultBreakEvenPercent,
				EvictionCostPerPod: v1alpha1.DefaultEvictionCostPerPod, Repack: v1alpha1.DefaultRepack, DrainByAttrition: v1alpha1.DefaultDrainByAttrition}}},
		{name: "karpenter-gpu, the node class's own", policy: PolicyKarpenterGPU, profile: kubescheduler.ProfileBinPacking,
			disruption: &v1alpha1.GPUDisruption{BreakEvenPercent: ptr.To(int32(1000)), EvictionCostPerPod: ptr.To("0"), Repack: ptr.To(false), DrainByAttrition: ptr.To(true)},
			want: report.Settings{SchedulerProfile: "bin-packing", GPUDisruption: &report.GPUDisruption{
				Protection: "BreakEven", BreakEvenPercent: 1000, EvictionCostPerPod: 0, Repack: false, DrainByAttrition: true}}},
		{name: "karpenter-gpu, protect-all", policy: PolicyKarpenterGPU, profile: kubescheduler.ProfileDefault,
			disruption: &v1alpha1.GPUDisruption{ProtectRunningGPUPods: ptr.To(true), EvictionCostPerPod: ptr.To("1.5")},
			want: report.Settings{SchedulerProfile: "default", GPUDisruption: &report.GPUDisruption{
				Protection: "Always", BreakEvenPercent: v1alpha1.DefaultBreakEvenPercent, EvictionCostPerPod: 1.5, Repack: true}}},
		{name: "stock: no GPU disruption settings", policy: PolicyStock, profile: kubescheduler.ProfileBinPacking,
			disruption: &v1alpha1.GPUDisruption{BreakEvenPercent: ptr.To(int32(1000))},
			want:       report.Settings{SchedulerProfile: "bin-packing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := workload.FromKube([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: train, namespace: ml}\nspec:\n  containers: [{name: c, image: i, resources: {requests: {cpu: '1', memory: 4Gi}, limits: {nvidia.com/gpu: 1}}}]\n"), "pod.yaml", workload.TraceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w.NodeClass = w.NodeClass.DeepCopy()
			w.NodeClass.Spec.GPU.Disruption = tc.disruption
			cfg := DefaultConfig()
			cfg.Policy, cfg.SchedulerProfile, cfg.Horizon = tc.policy, tc.profile, 10*time.Minute
			r, err := Run(context.Background(), w, cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := report.Settings{SchedulerProfile: r.Settings.SchedulerProfile, GPUDisruption: r.Settings.GPUDisruption}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}
