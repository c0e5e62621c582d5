package simulation

import (
	"bufio"
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// logTime returns the simulated time of the first debug-log line
// containing s.
func logTime(t *testing.T, log *bytes.Buffer, s string) time.Duration {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(log.Bytes()))
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, s) {
			d, err := time.ParseDuration(strings.Fields(line)[0])
			if err != nil {
				t.Fatalf("debug log line %q: %v", line, err)
			}
			return d
		}
	}
	t.Fatalf("no debug log line contains %q:\n%s", s, log.String())
	return 0
}

// TestEvictionModel replays testdata/eviction.yaml under stock Karpenter,
// which evicts the long pod when it replaces the g4dn.12xlarge ($3.912/h,
// $0.978 per GPU-hour) by a g4dn.xlarge after the short pods leave at 2h.
// The long pod started running when the first node registered (1s batch +
// 60s launch + 90s registration = 151s) and was evicted at te.
//   - batch, checkpoint 20m: it loses (te − 151s) mod 20m of work on one
//     GPU, re-run at $0.978/GPU-h; its replacement runs the 10h − te it had
//     left plus the lost part, so it completes late by the lost part plus
//     the time its replacement waited to run.
//   - service: it loses its 5m restart; it still leaves at 10h.
func TestEvictionModel(t *testing.T) {
	const gpuPrice = 3.912 / 4
	started := 151 * time.Second
	for _, class := range []evictioncost.Class{evictioncost.Batch, evictioncost.Service} {
		t.Run(string(class), func(t *testing.T) {
			w := load(t, "eviction.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
			for i := range w.Pods {
				if w.Pods[i].Name == "long-0" && class == evictioncost.Service {
					w.Pods[i].Annotations = map[string]string{evictioncost.AnnotationWorkloadClass: "service"}
				}
			}
			var log bytes.Buffer
			r := run(t, w, func(c *Config) { c.Policy = PolicyStock; c.DebugLog = &log })
			te := logTime(t, &log, "evicted long-0 from")
			if te < 2*time.Hour || te > 2*time.Hour+10*time.Minute {
				t.Fatalf("long-0 evicted at %s, want shortly after the short pods leave at 2h", te)
			}
			st, ok := r.Evictions[string(class)]
			if !ok || st.Evictions != 1 || st.GPUEvictions != 1 {
				t.Fatalf("evictions by class %+v, want one %s GPU-pod eviction", r.Evictions, class)
			}
			lost := 5 * time.Minute
			if class == evictioncost.Batch {
				lost = (te - started) % (20 * time.Minute)
			}
			if math.Abs(st.LostGPUHours-lost.Hours()) > 1e-9 {
				t.Errorf("lost GPU-hours %.6f, want %.6f (%s of work on 1 GPU)", st.LostGPUHours, lost.Hours(), lost)
			}
			if math.Abs(st.RerunUSD-lost.Hours()*gpuPrice) > 1e-9 {
				t.Errorf("re-run cost $%.6f, want $%.6f", st.RerunUSD, lost.Hours()*gpuPrice)
			}
			if r.LostGPUHours != st.LostGPUHours || r.RerunUSD != st.RerunUSD {
				t.Errorf("totals %.6f GPU-h $%.6f differ from the class's", r.LostGPUHours, r.RerunUSD)
			}
			d := st.CompletionDelaySeconds
			if class == evictioncost.Service {
				if d != nil {
					t.Errorf("a service replica has no completion delay, got %+v", d)
				}
				return
			}
			// The replacement runs once a node takes it (it goes pending at te).
			if d == nil || d.Count != 1 {
				t.Fatalf("completion delay %+v, want one batch pod", d)
			}
			wait := time.Duration(d.P50*float64(time.Second)) - lost
			if wait < 0 || wait > 10*time.Minute {
				t.Errorf("completion delay %.0fs = lost %s + a replacement wait of %s; want a wait within [0, 10m]", d.P50, lost, wait)
			}
		})
	}
}

// TestEvictionCauses: the report says why each GPU pod was evicted. Stock
// replaces testdata/eviction.yaml's g4dn.12xlarge by one smaller node
// (core's Underutilized); karpenter-gpu splits testdata/repack.yaml's
// g4dn.12xlarge left with two long pods into two nodes (a repacking move),
// and that deletion is the repacker's, not an idle-GPU removal.
func TestEvictionCauses(t *testing.T) {
	opts := workload.TraceOptions{GPUMap: workload.DefaultGPUMap()}
	stock := run(t, load(t, "eviction.yaml", opts), func(c *Config) { c.Policy = PolicyStock })
	if stock.GPUPodEvictions != 1 || stock.GPUPodEvictionsByCause["underutilized"] != 1 {
		t.Errorf("stock: %d GPU-pod evictions by cause %v, want 1 underutilized", stock.GPUPodEvictions, stock.GPUPodEvictionsByCause)
	}
	var log bytes.Buffer
	gpu := run(t, load(t, "repack.yaml", opts), func(c *Config) { c.Policy = PolicyKarpenterGPU; c.DebugLog = &log })
	if stock.GPUPodsEvicted != 1 {
		t.Errorf("stock: %d distinct GPU pods evicted, want 1", stock.GPUPodsEvicted)
	}
	if gpu.GPUPodEvictions != 2 || gpu.GPUPodEvictionsByCause["repack"] != 2 || gpu.GPUPodsEvicted != 2 {
		t.Errorf("karpenter-gpu: %d GPU-pod evictions of %d pods by cause %v, want the 2 long pods once each by repack\n%s", gpu.GPUPodEvictions, gpu.GPUPodsEvicted, gpu.GPUPodEvictionsByCause, log.String())
	}
	if gpu.NodeClaimDeletions["karpenter-gpu.repack"] != 1 || gpu.IdleGPURemovals != 0 {
		t.Errorf("karpenter-gpu: NodeClaim deletions %v, idle-GPU removals %d; want the 12xlarge deleted by the repacker and no idle-GPU removal", gpu.NodeClaimDeletions, gpu.IdleGPURemovals)
	}
}

// TestReplacementKeepsItsWorkload: each workload pod's objects (the
// original and the replacement after an eviction) have one controller, a
// Job for batch pods and a ReplicaSet for service replicas, and two
// workload pods have different ones, so the controller's repeat-eviction
// memory (evictioncost.Workload) follows a pod through its evictions and
// no further.
func TestReplacementKeepsItsWorkload(t *testing.T) {
	e := &engine{cfg: DefaultConfig()}
	gpu := corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}
	for _, tc := range []struct {
		class evictioncost.Class
		kind  string
	}{{evictioncost.Batch, "Job"}, {evictioncost.Service, "ReplicaSet"}} {
		t.Run(string(tc.class), func(t *testing.T) {
			ann := map[string]string{evictioncost.AnnotationWorkloadClass: string(tc.class)}
			a := &podState{spec: &workload.PodSpec{Name: "a", Requests: gpu, Annotations: ann}, name: "a"}
			b := &podState{spec: &workload.PodSpec{Name: "b", Requests: gpu, Annotations: ann}, name: "b"}
			first := e.podObject(a)
			a.name = "a-r1"
			replacement := e.podObject(a)
			other := e.podObject(b)
			owner := metav1.GetControllerOf(first)
			if owner == nil || owner.Kind != tc.kind {
				t.Fatalf("controller of %s = %+v, want a %s", first.Name, owner, tc.kind)
			}
			if got := evictioncost.Workload(replacement); got != evictioncost.Workload(first) || got != string(owner.UID) {
				t.Errorf("replacement %s has workload %q, want its original's %q", replacement.Name, got, evictioncost.Workload(first))
			}
			if evictioncost.Workload(other) == evictioncost.Workload(first) {
				t.Errorf("pods a and b share workload %q", evictioncost.Workload(first))
			}
		})
	}
}
