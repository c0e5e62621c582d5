// Package workload holds what a simulation replays: the workload inputs
// (Alibaba trace pods, native YAML scenarios, GPU model maps) parsed into
// pods with arrival and deletion times, and the cluster's provisioning
// configuration (GPUNodeClass, NodePools).
package workload

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/trace"
)

// Forever is the deletion time of a pod that never leaves.
const Forever = trace.Forever

// PodSpec is one pod of a workload: when it arrives and leaves, and what it
// asks the scheduler for.
type PodSpec struct {
	Name string
	// Namespace is the pod's namespace ("" means DefaultNamespace).
	Namespace string
	// Group names the workload the pod belongs to for cost reports
	// ("Deployment/web", "JobSet/train", a scenario's pod group; "" for
	// trace pods).
	Group string
	// Origin names where the pod came from ("file:line") for reports.
	Origin string
	// Arrival and Deletion bound the pod's life as the workload states it,
	// [Arrival, Deletion); Deletion is Forever for pods that never leave.
	Arrival, Deletion time.Duration
	Requests          corev1.ResourceList
	// Limits, when set, are the pod's limits (else extended resources get
	// limits equal to their requests, as the API server requires).
	Limits       corev1.ResourceList
	NodeSelector map[string]string
	// NodeAffinity is the pod's own node affinity (Kubernetes inputs);
	// Requirements are added to each of its required terms.
	NodeAffinity *corev1.NodeAffinity
	Requirements []corev1.NodeSelectorRequirement
	Tolerations  []corev1.Toleration
	Labels       map[string]string
	Annotations  map[string]string
	// Gang, when set, makes the pod a member of an all-or-nothing pod group.
	Gang *Gang `json:",omitempty"`
}

// Gang is the all-or-nothing pod group a pod belongs to: Size pods, of
// which MinMembers must run together.
type Gang struct {
	Name             string
	Size, MinMembers int
}

// DefaultNamespace holds pods whose input names no namespace.
const DefaultNamespace = "default"

// NamespaceOrDefault is the pod's namespace.
func (p *PodSpec) NamespaceOrDefault() string {
	if p.Namespace == "" {
		return DefaultNamespace
	}
	return p.Namespace
}

// Key identifies the pod in its workload: namespace/name.
func (p *PodSpec) Key() string { return p.NamespaceOrDefault() + "/" + p.Name }

// GPUs is the number of accelerators the pod requests (v1alpha1.Accelerators).
func (p *PodSpec) GPUs() int64 { return v1alpha1.Accelerators(p.Requests) }

// Workload is what a simulation replays: the cluster's provisioning
// configuration and the pods.
type Workload struct {
	// Source names the input ("embedded default trace", a file).
	Source    string
	NodeClass *v1alpha1.GPUNodeClass
	NodePools []*karpv1.NodePool
	// Pods sorted by arrival, then name.
	Pods []PodSpec
	// GPUMap is the trace-model mapping applied (nil when models were
	// ignored or the input has none).
	GPUMap GPUMap
	// IgnoredGPUModels is true when --ignore-gpu-model dropped the trace's
	// model constraints.
	IgnoredGPUModels bool
	// CPUPods is how a trace's CPU-only pods were treated; Excluded lists
	// the pods left out of the replay.
	CPUPods  CPUPods
	Excluded []ExcludedPod
	// Window, when set, is the part of the input this workload replays
	// (Slice): times are relative to its start.
	Window *Window
	// Span, when set, is the length of time the input observed (a
	// Prometheus range): the default horizon.
	Span time.Duration `json:",omitempty"`
	// Notes say what of the input the simulation leaves out or
	// approximates (printed with the report).
	Notes []string `json:",omitempty"`
	// KSMLabels: the pods' label keys are kube-state-metrics' label names
	// without their label_ prefix (KSMLabelName), not Kubernetes keys;
	// MapKSMLabel recovers a key where that is unambiguous.
	KSMLabels bool `json:",omitempty"`
}

// Window is a slice of an input's time: the pods alive at its start (they
// arrive at once at t=0) and those arriving within it.
type Window struct {
	Start, Length time.Duration
	// AliveAtStart and Arrived count the pods of each kind.
	AliveAtStart, Arrived int
}

// ExcludedPod is an input pod the replay leaves out, and why.
type ExcludedPod struct {
	Name   string `json:"name"`
	Origin string `json:"origin"`
	Reason string `json:"reason"`
	// arrival and deletion place it in time (Slice keeps those of its
	// window).
	arrival, deletion time.Duration
}

// DefaultNodeClassName is the GPUNodeClass the default NodePool uses.
const DefaultNodeClassName = "default"

// DefaultNodeClass is the GPUNodeClass used when the input names none.
func DefaultNodeClass() *v1alpha1.GPUNodeClass {
	return &v1alpha1.GPUNodeClass{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultNodeClassName},
		Spec: v1alpha1.GPUNodeClassSpec{
			SubnetSelectorTerms:        []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": "simulator"}}},
			SecurityGroupSelectorTerms: []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": "simulator"}}},
			Role:                       "KarpenterNodeRole-simulator",
		},
	}
}

// DefaultNodePool is the NodePool used for trace replays without a
// scenario: NVIDIA GPU instance types on amd64 (the trace's cluster ran only
// GPU nodes, and its workloads are x86), on-demand, with Karpenter's
// defaults for disruption (WhenEmptyOrUnderutilized, consolidateAfter 0s,
// budget 10%) except expireAfter: Never (the trace spans 149 days; periodic
// expiry would add churn that has nothing to do with packing).
func DefaultNodePool() *karpv1.NodePool {
	np := &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu"},
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
				NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: DefaultNodeClassName},
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
					{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.ArchitectureAmd64}},
					{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}},
					{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
				},
				ExpireAfter: karpv1.MustParseNillableDuration("Never"),
			}},
			Disruption: karpv1.Disruption{ConsolidateAfter: karpv1.MustParseNillableDuration("0s")},
		},
	}
	defaultNodePool(np, func(field string) bool { return field == "expireAfter" || field == "consolidateAfter" })
	return np
}

// defaultNodePool applies the defaults the NodePool CRD applies at
// admission (the in-memory API server does no defaulting). set reports
// whether the input gave a field ("expireAfter", "consolidateAfter"): a
// NillableDuration reads "Never" and "absent" alike.
func defaultNodePool(np *karpv1.NodePool, set func(field string) bool) {
	d := &np.Spec.Disruption
	if d.ConsolidationPolicy == "" {
		d.ConsolidationPolicy = karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized
	}
	if d.ConsolidateAfter.Duration == nil && !set("consolidateAfter") {
		d.ConsolidateAfter = karpv1.MustParseNillableDuration("0s")
	}
	if d.Budgets == nil {
		d.Budgets = []karpv1.Budget{{Nodes: "10%"}}
	}
	t := &np.Spec.Template.Spec
	if t.ExpireAfter.Duration == nil && !set("expireAfter") {
		t.ExpireAfter = karpv1.MustParseNillableDuration("720h")
	}
}

// CPUPods says what a trace replay does with pods that request no GPU.
type CPUPods string

const (
	// CPUPodsExclude leaves them out of the replay (counted in the report):
	// they need CPU capacity that a GPU catalog does not offer, and
	// karpenter-gpu keeps CPU pods off GPU nodes.
	CPUPodsExclude CPUPods = "exclude"
	// CPUPodsGPUNodes runs them on GPU nodes, as the trace's all-GPU cluster
	// did: they tolerate the GPU taint karpenter-gpu puts on GPU NodePools.
	CPUPodsGPUNodes CPUPods = "gpu-nodes"
	// CPUPodsAsIs keeps them as written (unschedulable unless some NodePool
	// offers CPU capacity they tolerate).
	CPUPodsAsIs CPUPods = "as-is"
)

// ParseCPUPods validates a --cpu-pods value.
func ParseCPUPods(s string) (CPUPods, error) {
	switch CPUPods(s) {
	case CPUPodsExclude, CPUPodsGPUNodes, CPUPodsAsIs:
		return CPUPods(s), nil
	}
	return "", fmt.Errorf("unknown --cpu-pods %q (want %s, %s or %s)", s, CPUPodsExclude, CPUPodsGPUNodes, CPUPodsAsIs)
}

// TraceOptions say how trace pods become simulated pods.
type TraceOptions struct {
	// GPUMap maps gpu_spec models to catalog GPUs; nil ignores models.
	GPUMap GPUMap
	// CPUPods: what to do with pods without GPUs (default exclude).
	CPUPods CPUPods
	// QoSClasses maps the trace's qos column to the eviction model's
	// workload class; nil means DefaultQoSClasses. A QoS it does not name
	// is an error.
	QoSClasses map[string]evictioncost.Class
}

// DefaultQoSClasses: Alibaba's best-effort (BE) pods are batch jobs (they
// lose work since their last checkpoint when evicted); latency-sensitive
// (LS), Guaranteed and Burstable pods are services (a replica restarts).
// An empty qos is batch. Override with --qos-classes.
func DefaultQoSClasses() map[string]evictioncost.Class {
	return map[string]evictioncost.Class{"BE": evictioncost.Batch, "": evictioncost.Batch,
		"LS": evictioncost.Service, "Guaranteed": evictioncost.Service, "Burstable": evictioncost.Service}
}

// ParseQoSClasses reads "BE=batch,LS=service,...": entries replace the
// defaults' (the rest stay).
func ParseQoSClasses(s string) (map[string]evictioncost.Class, error) {
	out := DefaultQoSClasses()
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("--qos-classes: %q is not QOS=class", kv)
		}
		c, err := evictioncost.ParseClass(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("--qos-classes: %w", err)
		}
		out[strings.TrimSpace(k)] = c
	}
	return out, nil
}

// FromTrace builds a workload from trace pods: requests from cpu_milli,
// memory_mib and num_gpu (a shared GPU, gpu_milli < 1000, still takes one
// whole nvidia.com/gpu), GPU model constraints from gpu_spec through the GPU
// map. An unknown model is an error naming the source, line and field.
func FromTrace(pods []trace.Pod, source string, opts TraceOptions) (*Workload, error) {
	gpuMap := opts.GPUMap
	if opts.CPUPods == "" {
		opts.CPUPods = CPUPodsExclude
	}
	w := &Workload{Source: source, NodeClass: DefaultNodeClass(), NodePools: []*karpv1.NodePool{DefaultNodePool()}, GPUMap: gpuMap, IgnoredGPUModels: gpuMap == nil, CPUPods: opts.CPUPods}
	qos := opts.QoSClasses
	if qos == nil {
		qos = DefaultQoSClasses()
	}
	seen := map[string]int{}
	for i := range pods {
		p := &pods[i]
		if p.GPUs == 0 && opts.CPUPods == CPUPodsExclude {
			w.Excluded = append(w.Excluded, ExcludedPod{Name: p.Name, Origin: fmt.Sprintf("%s:%d", source, p.Line), Reason: "requests no GPU (--cpu-pods=exclude)",
				arrival: p.Created, deletion: p.Deleted})
			continue
		}
		if prev, dup := seen[p.Name]; dup {
			return nil, fmt.Errorf("%s:%d: field %q: pod %q already defined on line %d", source, p.Line, trace.ColName, p.Name, prev)
		}
		seen[p.Name] = p.Line
		if errs := validationErrors(p.Name); errs != "" {
			return nil, fmt.Errorf("%s:%d: field %q: %q is not a valid pod name: %s", source, p.Line, trace.ColName, p.Name, errs)
		}
		spec := PodSpec{
			Name:     p.Name,
			Group:    "qos/" + lo.CoalesceOrEmpty(p.QoS, "none"), // the trace's only grouping
			Origin:   fmt.Sprintf("%s:%d", source, p.Line),
			Arrival:  p.Created,
			Deletion: p.Deleted,
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(p.CPUMilli, resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(p.MemoryMiB*1024*1024, resource.BinarySI),
			},
		}
		class, ok := qos[p.QoS]
		if !ok {
			return nil, fmt.Errorf("%s:%d: field %q: QoS %q has no workload class (known: %s; map it with --qos-classes %s=batch|service)",
				source, p.Line, trace.ColQoS, p.QoS, strings.Join(lo.Keys(qos), ", "), p.QoS)
		}
		spec.Annotations = map[string]string{evictioncost.AnnotationWorkloadClass: string(class)}
		if p.GPUs == 0 && opts.CPUPods == CPUPodsGPUNodes {
			// Every node of the trace's cluster was a GPU node, so its CPU
			// pods ran on GPU nodes; they tolerate the GPU taint that
			// karpenter-gpu puts on GPU NodePools to do so here.
			spec.Tolerations = []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		}
		if p.GPUs > 0 {
			spec.Requests[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(p.GPUs, resource.DecimalSI)
			if gpuMap != nil {
				reqs, err := gpuMap.Requirements(p.GPUSpec)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: field %q: %w", source, p.Line, trace.ColGPUSpec, err)
				}
				spec.Requirements = reqs
			}
		}
		w.Pods = append(w.Pods, spec)
	}
	w.SortPods()
	return w, nil
}

// SortPods orders the pods by arrival, then name (the order Workload.Pods
// keeps); call it after adding pods.
func (w *Workload) SortPods() {
	sort.SliceStable(w.Pods, func(i, j int) bool {
		if w.Pods[i].Arrival != w.Pods[j].Arrival {
			return w.Pods[i].Arrival < w.Pods[j].Arrival
		}
		return w.Pods[i].Name < w.Pods[j].Name
	})
}

// Snapshot keeps the pods alive at t (Arrival <= t < Deletion), arriving at
// 0 and never leaving: one provisioning batch for static comparisons.
func (w *Workload) Snapshot(t time.Duration) *Workload {
	out := *w
	out.Pods = nil
	for _, p := range w.Pods {
		if p.Arrival <= t && t < p.Deletion {
			p.Arrival, p.Deletion = 0, Forever
			out.Pods = append(out.Pods, p)
		}
	}
	out.Source = fmt.Sprintf("%s at t=%s", w.Source, t)
	out.Excluded = nil
	for _, x := range w.Excluded {
		out.Excluded = append(out.Excluded, x)
	}
	out.SortPods()
	return &out
}

// Slice keeps what happens in [start, start+length): pods alive at start
// arrive at t=0 (one batch, as a cluster's fleet at that moment), pods
// arriving later keep their times relative to start, deletions too (a
// deletion past the window's end is simply not reached). Pods outside it are
// dropped, so the report counts only pods the window replays.
func (w *Workload) Slice(start, length time.Duration) (*Workload, error) {
	if start < 0 || length <= 0 {
		return nil, fmt.Errorf("window [%s, +%s): want start >= 0 and a positive length", start, length)
	}
	out := *w
	out.Pods = nil
	win := &Window{Start: start, Length: length}
	end := start + length
	for _, p := range w.Pods {
		if p.Arrival >= end || (p.Deletion != Forever && p.Deletion <= start) {
			continue
		}
		if p.Arrival <= start {
			p.Arrival = 0
			win.AliveAtStart++
		} else {
			p.Arrival -= start
			win.Arrived++
		}
		if p.Deletion != Forever {
			p.Deletion -= start
		}
		out.Pods = append(out.Pods, p)
	}
	if len(out.Pods) == 0 {
		return nil, fmt.Errorf("%s: no pod is alive in the window [%s, %s)", w.Source, start, end)
	}
	out.Excluded = nil
	for _, x := range w.Excluded {
		if x.arrival < end && (x.deletion == Forever || x.deletion > start) {
			out.Excluded = append(out.Excluded, x)
		}
	}
	if start > 0 {
		out.Source = fmt.Sprintf("%s, window %s+%s", w.Source, start, length)
	}
	out.Window = win
	out.SortPods()
	return &out, nil
}

// End is the last finite arrival or deletion.
func (w *Workload) End() time.Duration {
	var end time.Duration
	for _, p := range w.Pods {
		end = max(end, p.Arrival)
		if p.Deletion != Forever {
			end = max(end, p.Deletion)
		}
	}
	return end
}

// HasForever reports whether some pod never leaves.
func (w *Workload) HasForever() bool {
	return lo.ContainsBy(w.Pods, func(p PodSpec) bool { return p.Deletion == Forever })
}

// Busiest is the moment with the most GPU pods alive (the earliest such
// moment), as trace.BusiestMoments defines it.
func (w *Workload) Busiest() time.Duration {
	pods := make([]trace.Pod, 0, len(w.Pods))
	for _, p := range w.Pods {
		pods = append(pods, trace.Pod{Name: p.Name, GPUs: p.GPUs(), Created: p.Arrival, Deleted: p.Deletion})
	}
	if m := trace.BusiestMoments(pods, 1); len(m) > 0 {
		return m[0]
	}
	return 0
}
