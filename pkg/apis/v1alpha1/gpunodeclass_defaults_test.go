package v1alpha1_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

func ptr[T any](v T) *T { return &v }

func nillable(s string) *karpv1.NillableDuration {
	d := karpv1.MustParseNillableDuration(s)
	return &d
}

func withGPU(g v1alpha1.GPUOptions) *v1alpha1.GPUNodeClass {
	return &v1alpha1.GPUNodeClass{Spec: v1alpha1.GPUNodeClassSpec{GPU: g}}
}

func TestIdleAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     *karpv1.NillableDuration
		want   time.Duration
		wantOK bool
	}{
		{"unset defaults to 10m", nil, 10 * time.Minute, true},
		{"Never disables", nillable("Never"), 0, false},
		{"explicit 30m", nillable("30m"), 30 * time.Minute, true},
		{"explicit 1h30m", nillable("1h30m"), 90 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := withGPU(v1alpha1.GPUOptions{IdleAfter: tc.in}).IdleAfter()
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("IdleAfter() = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestIdleAfterJSON(t *testing.T) {
	for _, tc := range []struct {
		json   string
		want   time.Duration
		wantOK bool
	}{
		{`{}`, 10 * time.Minute, true},
		{`{"idleAfter":"Never"}`, 0, false},
		{`{"idleAfter":"45m"}`, 45 * time.Minute, true},
	} {
		var g v1alpha1.GPUOptions
		if err := json.Unmarshal([]byte(tc.json), &g); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		got, ok := withGPU(g).IdleAfter()
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: IdleAfter() = %v, %v; want %v, %v", tc.json, got, ok, tc.want, tc.wantOK)
		}
		// Round trip keeps the meaning: Never must not turn into unset.
		raw, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		var back v1alpha1.GPUOptions
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got2, ok2 := withGPU(back).IdleAfter(); got2 != got || ok2 != ok {
			t.Errorf("%s: after round trip %s IdleAfter() = %v, %v", tc.json, raw, got2, ok2)
		}
	}
}

func TestStartupTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *metav1.Duration
		want time.Duration
	}{
		{"unset defaults to 15m", nil, 15 * time.Minute},
		{"zero defaults to 15m", &metav1.Duration{}, 15 * time.Minute},
		{"explicit 20m", &metav1.Duration{Duration: 20 * time.Minute}, 20 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withGPU(v1alpha1.GPUOptions{StartupTimeout: tc.in}).StartupTimeout(); got != tc.want {
				t.Errorf("StartupTimeout() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGPUTaintEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *bool
		want bool
	}{
		{"unset defaults to true", nil, true},
		{"explicit false", ptr(false), false},
		{"explicit true", ptr(true), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withGPU(v1alpha1.GPUOptions{Taint: tc.in}).GPUTaintEnabled(); got != tc.want {
				t.Errorf("GPUTaintEnabled() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTimeSlicingReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *v1alpha1.TimeSlicing
		want int32
	}{
		{"unset is 1", nil, 1},
		{"zero is 1", &v1alpha1.TimeSlicing{}, 1},
		{"explicit 4", &v1alpha1.TimeSlicing{Replicas: 4}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withGPU(v1alpha1.GPUOptions{TimeSlicing: tc.in}).TimeSlicingReplicas(); got != tc.want {
				t.Errorf("TimeSlicingReplicas() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDisruption(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          *v1alpha1.GPUDisruption
		wantMode    string
		wantPercent int32
	}{
		{"unset", nil, v1alpha1.ProtectionBreakEven, 300},
		{"empty", &v1alpha1.GPUDisruption{}, v1alpha1.ProtectionBreakEven, 300},
		{"percent", &v1alpha1.GPUDisruption{BreakEvenPercent: ptr(int32(300))}, v1alpha1.ProtectionBreakEven, 300},
		{"zero percent releases at once", &v1alpha1.GPUDisruption{BreakEvenPercent: ptr(int32(0))}, v1alpha1.ProtectionBreakEven, 0},
		{"always", &v1alpha1.GPUDisruption{Protection: ptr(v1alpha1.ProtectionAlways)}, v1alpha1.ProtectionAlways, 300},
		{"never", &v1alpha1.GPUDisruption{Protection: ptr(v1alpha1.ProtectionNever)}, v1alpha1.ProtectionNever, 300},
		{"deprecated false", &v1alpha1.GPUDisruption{ProtectRunningGPUPods: ptr(false)}, v1alpha1.ProtectionNever, 300},
		{"deprecated true keeps its meaning", &v1alpha1.GPUDisruption{ProtectRunningGPUPods: ptr(true)}, v1alpha1.ProtectionAlways, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := withGPU(v1alpha1.GPUOptions{Disruption: tc.in})
			if mode, percent := nc.GPUWorkProtection(); mode != tc.wantMode || percent != tc.wantPercent {
				t.Errorf("GPUWorkProtection() = %s, %d; want %s, %d", mode, percent, tc.wantMode, tc.wantPercent)
			}
		})
	}
}

func TestEvictionCostPerPod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      *v1alpha1.GPUDisruption
		want    float64
		wantErr bool
	}{
		{"unset: the default", nil, v1alpha1.DefaultEvictionCostPerPod, false},
		{"empty: the default", &v1alpha1.GPUDisruption{}, v1alpha1.DefaultEvictionCostPerPod, false},
		{"set", &v1alpha1.GPUDisruption{EvictionCostPerPod: ptr("0.25")}, 0.25, false},
		{"zero turns it off", &v1alpha1.GPUDisruption{EvictionCostPerPod: ptr("0")}, 0, false},
		{"negative", &v1alpha1.GPUDisruption{EvictionCostPerPod: ptr("-1")}, 0, true},
		{"not a number", &v1alpha1.GPUDisruption{EvictionCostPerPod: ptr("a dollar")}, 0, true},
		{"NaN", &v1alpha1.GPUDisruption{EvictionCostPerPod: ptr("NaN")}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withGPU(v1alpha1.GPUOptions{Disruption: tc.in}).EvictionCostPerPod()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("EvictionCostPerPod() = %g, %v; want %g, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRepackDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *v1alpha1.GPUDisruption
		want bool
	}{
		{"unset: on", nil, true},
		{"empty: on", &v1alpha1.GPUDisruption{}, true},
		{"off", &v1alpha1.GPUDisruption{Repack: ptr(false)}, false},
		{"on", &v1alpha1.GPUDisruption{Repack: ptr(true)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withGPU(v1alpha1.GPUOptions{Disruption: tc.in}).RepackEnabled(); got != tc.want {
				t.Errorf("RepackEnabled() = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestOtherDefaults(t *testing.T) {
	nc := &v1alpha1.GPUNodeClass{}
	if got := nc.AMIFamilyOrDefault(); got != v1alpha1.AMIFamilyAL2023 {
		t.Errorf("AMIFamilyOrDefault() = %q", got)
	}
	if got := nc.MIGStrategy(); got != v1alpha1.MIGStrategyNone {
		t.Errorf("MIGStrategy() = %q", got)
	}
	if got := nc.HTTPTokens(); got != v1alpha1.HTTPTokensRequired {
		t.Errorf("HTTPTokens() = %q", got)
	}
	if got := nc.HTTPPutResponseHopLimit(); got != 1 {
		t.Errorf("HTTPPutResponseHopLimit() = %d", got)
	}
	nc.Spec.AMIFamily = v1alpha1.AMIFamilyBottlerocket
	nc.Spec.GPU.MIGStrategy = v1alpha1.MIGStrategyMixed
	nc.Spec.MetadataOptions = &v1alpha1.MetadataOptions{HTTPTokens: ptr("optional"), HTTPPutResponseHopLimit: ptr(int64(2))}
	if nc.AMIFamilyOrDefault() != v1alpha1.AMIFamilyBottlerocket || nc.MIGStrategy() != v1alpha1.MIGStrategyMixed ||
		nc.HTTPTokens() != "optional" || nc.HTTPPutResponseHopLimit() != 2 {
		t.Errorf("explicit values not returned: %+v", nc.Spec)
	}
}

func TestSchemeAndStatus(t *testing.T) {
	gvks, _, err := scheme.Scheme.ObjectKinds(&v1alpha1.GPUNodeClass{})
	if err != nil || len(gvks) != 1 || gvks[0].Group != "karpenter-gpu.io" || gvks[0].Version != "v1alpha1" || gvks[0].Kind != "GPUNodeClass" {
		t.Fatalf("GPUNodeClass not registered in scheme.Scheme: %v %v", gvks, err)
	}
	var obj status.Object = &v1alpha1.GPUNodeClass{}
	conds := obj.StatusConditions()
	for _, c := range []string{v1alpha1.ConditionTypeSubnetsReady, v1alpha1.ConditionTypeSecurityGroupsReady, v1alpha1.ConditionTypeAMIsReady} {
		conds.SetTrue(c)
	}
	if conds.Root().IsTrue() {
		t.Fatal("Ready is True before InstanceProfileReady")
	}
	conds.SetTrue(v1alpha1.ConditionTypeInstanceProfileReady)
	if !conds.IsTrue(v1alpha1.ConditionTypeReady) {
		t.Fatalf("Ready not True when all dependents are: %+v", obj.GetConditions())
	}
}
