package evictioncost_test

import (
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

func pod(owner string, ann map[string]string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: ann}}
	if owner != "" {
		t := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "o", Controller: &t}}
	}
	return p
}

func TestProfileOf(t *testing.T) {
	m := evictioncost.Model{CheckpointInterval: 30 * time.Minute, RestartTime: 2 * time.Minute}
	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		class      evictioncost.Class
		checkpoint time.Duration
		restart    time.Duration
		fixed      float64
		err        string
	}{
		{name: "bare pod is batch", pod: pod("", nil), class: evictioncost.Batch, checkpoint: 30 * time.Minute, restart: 2 * time.Minute},
		{name: "job is batch", pod: pod("Job", nil), class: evictioncost.Batch, checkpoint: 30 * time.Minute, restart: 2 * time.Minute},
		{name: "replicaset serves", pod: pod("ReplicaSet", nil), class: evictioncost.Service, checkpoint: 30 * time.Minute, restart: 2 * time.Minute},
		{name: "statefulset serves", pod: pod("StatefulSet", nil), class: evictioncost.Service, checkpoint: 30 * time.Minute, restart: 2 * time.Minute},
		{name: "annotation overrides owner", pod: pod("ReplicaSet", map[string]string{evictioncost.AnnotationWorkloadClass: "batch", evictioncost.AnnotationCheckpointInterval: "never"}), class: evictioncost.Batch, checkpoint: evictioncost.Never, restart: 2 * time.Minute},
		{name: "restart time annotation", pod: pod("", map[string]string{evictioncost.AnnotationWorkloadClass: "service", evictioncost.AnnotationRestartTime: "10m"}), class: evictioncost.Service, checkpoint: 30 * time.Minute, restart: 10 * time.Minute},
		{name: "fixed cost", pod: pod("", map[string]string{evictioncost.AnnotationEvictionCost: "12.5"}), class: evictioncost.Batch, checkpoint: 30 * time.Minute, restart: 2 * time.Minute, fixed: 12.5},
		{name: "bad class", pod: pod("", map[string]string{evictioncost.AnnotationWorkloadClass: "training"}), err: `unknown workload class "training"`},
		{name: "bad checkpoint", pod: pod("", map[string]string{evictioncost.AnnotationCheckpointInterval: "-1h"}), err: "must be positive"},
		{name: "bad cost", pod: pod("", map[string]string{evictioncost.AnnotationEvictionCost: "lots"}), err: "not a non-negative number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := m.ProfileOf(tc.pod)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "ns/p") {
					t.Fatalf("error %v, want one naming the pod and containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Class != tc.class || p.CheckpointInterval != tc.checkpoint || p.RestartTime != tc.restart {
				t.Fatalf("got %+v, want class %s checkpoint %s restart %s", p, tc.class, tc.checkpoint, tc.restart)
			}
			if (tc.fixed != 0) != (p.FixedUSD != nil) || (p.FixedUSD != nil && *p.FixedUSD != tc.fixed) {
				t.Fatalf("fixed cost %v, want %v", p.FixedUSD, tc.fixed)
			}
		})
	}
}

func TestLostWorkAndUSD(t *testing.T) {
	batch := evictioncost.Profile{Class: evictioncost.Batch, CheckpointInterval: time.Hour}
	never := evictioncost.Profile{Class: evictioncost.Batch, CheckpointInterval: evictioncost.Never}
	svc := evictioncost.Profile{Class: evictioncost.Service, RestartTime: 5 * time.Minute}
	for _, tc := range []struct {
		name           string
		p              evictioncost.Profile
		ran, remaining time.Duration
		lost           time.Duration
	}{
		{"batch loses since last checkpoint", batch, 150 * time.Minute, -1, 30 * time.Minute},
		{"batch right after a checkpoint loses nothing", batch, 2 * time.Hour, -1, 0},
		{"batch never checkpointing loses all", never, 150 * time.Minute, -1, 150 * time.Minute},
		{"service restarts", svc, 10 * time.Hour, time.Hour, 5 * time.Minute},
		{"service about to end loses only what is left", svc, 10 * time.Hour, 2 * time.Minute, 2 * time.Minute},
		{"negative ran is none", batch, -time.Minute, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.LostWork(tc.ran, tc.remaining); got != tc.lost {
				t.Fatalf("LostWork = %s, want %s", got, tc.lost)
			}
		})
	}
	// 30 min lost on 2 GPUs at $3/GPU-h = $3.
	if got := batch.USD(150*time.Minute, 2, 3); got < 2.999 || got > 3.001 {
		t.Fatalf("USD = %v, want 3", got)
	}
	f := 7.0
	if got := (evictioncost.Profile{Class: evictioncost.Batch, FixedUSD: &f}).USD(time.Hour, 8, 10); got != 7 {
		t.Fatalf("fixed USD = %v, want 7", got)
	}
}

func TestParseCheckpointInterval(t *testing.T) {
	for in, want := range map[string]time.Duration{"1h": time.Hour, "never": evictioncost.Never, " Never ": evictioncost.Never, "90s": 90 * time.Second} {
		if got, err := evictioncost.ParseCheckpointInterval(in); err != nil || got != want {
			t.Errorf("%q: got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0s", "-5m", "hourly"} {
		if _, err := evictioncost.ParseCheckpointInterval(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestWorkload(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		refs []metav1.OwnerReference
		want string
	}{
		{"a bare pod is its own workload", nil, "pod-uid"},
		{"a controlled pod is its controller's", []metav1.OwnerReference{{Kind: "Job", Name: "train", UID: "job-uid", Controller: &yes}}, "job-uid"},
		{"an owner that is not the controller does not count", []metav1.OwnerReference{{Kind: "ConfigMap", Name: "c", UID: "cm-uid", Controller: &no}}, "pod-uid"},
		{"the controller among several owners", []metav1.OwnerReference{{Kind: "ConfigMap", UID: "cm-uid"}, {Kind: "ReplicaSet", UID: "rs-uid", Controller: &yes}}, "rs-uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "pod-uid", OwnerReferences: tc.refs}}
			if got := evictioncost.Workload(p); got != tc.want {
				t.Errorf("Workload = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRepeat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       evictioncost.Repeat
		on      bool
		invalid string
	}{
		{"zero value: off", evictioncost.Repeat{}, false, ""},
		{"a window with multiplier 1 weighs nothing", evictioncost.Repeat{Window: time.Hour, Multiplier: 1}, false, ""},
		{"a multiplier without a window weighs nothing", evictioncost.Repeat{Multiplier: 3}, false, ""},
		{"on", evictioncost.Repeat{Window: time.Hour, Multiplier: 3}, true, ""},
		{"negative window", evictioncost.Repeat{Window: -time.Hour, Multiplier: 3}, false, "must not be negative"},
		{"negative multiplier", evictioncost.Repeat{Window: time.Hour, Multiplier: -1}, false, "want a finite number"},
		{"infinite multiplier", evictioncost.Repeat{Window: time.Hour, Multiplier: math.Inf(1)}, true, "want a finite number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.On(); got != tc.on {
				t.Errorf("On = %v, want %v", got, tc.on)
			}
			err := tc.r.Validate()
			switch {
			case tc.invalid == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.invalid != "" && (err == nil || !strings.Contains(err.Error(), tc.invalid)):
				t.Errorf("Validate = %v, want an error containing %q", err, tc.invalid)
			}
		})
	}
}
