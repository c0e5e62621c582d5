// Package kubescheduler is the simulator's kube-scheduler: the filters and
// scores kube-scheduler v1.36 (k8s.io/kubernetes v1.36.1, the version
// tools/go.mod pins and test/schedulerdiff runs) applies to the pods and
// nodes a simulation creates, under its default profile or the GPU
// bin-packing profile of designs/scheduler-profile.md.
//
// kube-scheduler's plugins live in k8s.io/kubernetes, which this module does
// not depend on (tools/go.mod keeps it out of the product's dependency
// graph), so the plugin formulas are written out here, each citing the file
// of k8s.io/kubernetes v1.36.1 it mirrors. The helpers kube-scheduler itself
// takes from k8s.io/component-helpers (pod requests, taint tolerations, node
// affinity matching and preferred-term scoring) are used as they are.
//
// What is modelled (the plugins of the default profile that can tell nodes
// apart for simulator pods):
//
//   - filters: NodeUnschedulable, TaintToleration (NoSchedule, NoExecute),
//     NodeAffinity (node selector and required terms), NodeResourcesFit
//     (pod count, cpu, memory, ephemeral storage, extended resources);
//   - scores: NodeResourcesFit (LeastAllocated over cpu and memory by default,
//     MostAllocated with nvidia.com/gpu weighted highest under bin-packing),
//     NodeResourcesBalancedAllocation, TaintToleration (PreferNoSchedule) and
//     NodeAffinity (preferred terms), with their default weights 1, 1, 3, 2;
//   - a pod's status.nominatedNodeName is tried first and taken if it passes
//     the filters, without scoring (schedule_one.go findNodesThatFitPod);
//   - the nominator: pending pods whose status.nominatedNodeName names a
//     node hold their requests there against pods of equal or lower
//     priority (framework/runtime/framework.go
//     RunFilterPluginsWithNominatedPods), whoever set the field (KEP-5278,
//     which kube-scheduler v1.35+ keeps set while the pod waits).
//
// What is not: ImageLocality (one image everywhere: the same score on every
// node), PodTopologySpread and InterPodAffinity (simulator pods carry no
// spread constraints or pod affinity, and the system default spreading only
// applies to pods selected by a Service, ReplicaSet, StatefulSet or
// ReplicationController, which simulations do not create), NodePorts and the
// volume plugins (no host ports or volumes), DRA. Two behaviours differ on
// purpose: among nodes with the same top score kube-scheduler picks at random
// (schedule_one.go, nodeScoreHeap's Randomizer); here the first by name wins,
// so simulations stay deterministic. And kube-scheduler scores only a sample
// of the feasible nodes once a cluster has more than 100 nodes
// (percentageOfNodesToScore, adaptive by default); here every feasible node
// is scored.
package kubescheduler

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Profile selects the scoring kube-scheduler runs.
type Profile string

const (
	// ProfileDefault is kube-scheduler's default profile: NodeResourcesFit
	// scores LeastAllocated over cpu and memory (weight 1 each), which
	// spreads pods over the nodes.
	ProfileDefault Profile = "default"
	// ProfileBinPacking is the default profile with NodeResourcesFit scoring
	// MostAllocated over cpu (1), memory (1) and nvidia.com/gpu
	// (BinPackingGPUWeight): pods go to the fullest node that fits them,
	// GPU use first, which keeps whole GPU nodes free to be consolidated.
	ProfileBinPacking Profile = "bin-packing"
)

// BinPackingGPUWeight is nvidia.com/gpu's (v1alpha1.ResourceNVIDIAGPU)
// weight in the bin-packing profile's NodeResourcesFit scoring strategy (cpu
// and memory weigh 1). Only NVIDIA's resource is weighted, as in
// designs/scheduler-profile.md's KubeSchedulerConfiguration.
const BinPackingGPUWeight = 10

// Profiles lists the profiles, default first.
var Profiles = []Profile{ProfileDefault, ProfileBinPacking}

// ParseProfile returns the profile named s; "" is the default profile.
func ParseProfile(s string) (Profile, error) {
	switch Profile(s) {
	case "", ProfileDefault:
		return ProfileDefault, nil
	case ProfileBinPacking:
		return ProfileBinPacking, nil
	}
	names := make([]string, len(Profiles))
	for i, p := range Profiles {
		names[i] = string(p)
	}
	return "", fmt.Errorf("unknown scheduler profile %q (one of %s)", s, strings.Join(names, ", "))
}

// ResourceWeight is one resource of a scoring strategy with its weight
// (KubeSchedulerConfiguration's ResourceSpec).
type ResourceWeight struct {
	Name   corev1.ResourceName
	Weight int64
}

// Plugin weights of the default profile
// (pkg/scheduler/apis/config/v1/default_plugins.go).
const (
	WeightTaintToleration    = 3
	WeightNodeAffinity       = 2
	WeightNodeResourcesFit   = 1
	WeightBalancedAllocation = 1
)

// maxNodeScore is fwk.MaxNodeScore.
const maxNodeScore int64 = 100

// Scheduler-side defaults for pods that request no cpu or memory
// (pkg/scheduler/util/pod_resources.go).
const (
	defaultMilliCPURequest int64 = 100
	defaultMemoryRequest   int64 = 200 * 1024 * 1024
)

// FitStrategy returns the profile's NodeResourcesFit scoring strategy:
// whether it is MostAllocated (else LeastAllocated), and its resources.
func (p Profile) FitStrategy() (mostAllocated bool, resources []ResourceWeight) {
	if p == ProfileBinPacking {
		return true, []ResourceWeight{{corev1.ResourceCPU, 1}, {corev1.ResourceMemory, 1}, {v1alpha1.ResourceNVIDIAGPU, BinPackingGPUWeight}}
	}
	// pkg/scheduler/apis/config/v1/defaults.go: defaultResourceSpec.
	return false, []ResourceWeight{{corev1.ResourceCPU, 1}, {corev1.ResourceMemory, 1}}
}

// balancedResources are NodeResourcesBalancedAllocation's default resources.
var balancedResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// podResources is a pod's requests as kube-scheduler counts them
// (pkg/scheduler/framework/types.go, PodInfo.CalculateResource): the
// requests, and cpu and memory with containers that request none counted
// at the scheduler's defaults.
type podResources struct {
	requested        map[corev1.ResourceName]int64 // cpu in millicores
	non0CPU, non0Mem int64
}

func quantity(name corev1.ResourceName, q resource.Quantity) int64 {
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

func resourcesOf(pod *corev1.Pod) podResources {
	// InPlacePodVerticalScaling is GA: kube-scheduler reads status resources.
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{UseStatusResources: true})
	out := podResources{requested: make(map[corev1.ResourceName]int64, len(reqs))}
	for name, q := range reqs {
		out.requested[name] = quantity(name, q)
	}
	non0 := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{UseStatusResources: true, NonMissingContainerRequests: corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(defaultMilliCPURequest, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(defaultMemoryRequest, resource.DecimalSI),
	}})
	cpu, mem := non0[corev1.ResourceCPU], non0[corev1.ResourceMemory]
	out.non0CPU, out.non0Mem = cpu.MilliValue(), mem.Value()
	return out
}

// NodeInfo is a node with what the pods assigned to it request (the
// scheduler cache's NodeInfo). Terminal pods do not count: kube-scheduler's
// informer does not list them.
type NodeInfo struct {
	Node *corev1.Node
	// Pods is the number of pods assigned.
	Pods        int
	allocatable map[corev1.ResourceName]int64
	requested   map[corev1.ResourceName]int64
	// nonZero are cpu (millicores) and memory requested, pods without a
	// request counted at the defaults.
	non0CPU, non0Mem int64
	// nominated are the pending pods nominated to the node (Nominate).
	nominated []*Pod
}

// NewNodeInfo returns node with the given pods assigned.
func NewNodeInfo(node *corev1.Node, pods ...*corev1.Pod) *NodeInfo {
	ni := &NodeInfo{Node: node, allocatable: make(map[corev1.ResourceName]int64, len(node.Status.Allocatable)), requested: map[corev1.ResourceName]int64{}}
	for name, q := range node.Status.Allocatable {
		ni.allocatable[name] = quantity(name, q)
	}
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// AddPod assigns pod to the node.
func (ni *NodeInfo) AddPod(pod *corev1.Pod) { ni.add(resourcesOf(pod)) }

// Nominate records p, a pending pod whose status.nominatedNodeName names
// the node, in the node's share of kube-scheduler's nominator
// (backend/queue/nominator.go): until p binds or is deleted, the filters
// count its requests on the node for every other pod of equal or lower
// priority. Reserve removes it.
func (ni *NodeInfo) Nominate(p *Pod) {
	ni.nominated = append(ni.nominated, p)
	p.nominatedTo = ni
}

// Nominated is the number of pods nominated to the node.
func (ni *NodeInfo) Nominated() int { return len(ni.nominated) }

func (ni *NodeInfo) add(r podResources) {
	ni.Pods++
	for name, v := range r.requested {
		ni.requested[name] += v
	}
	ni.non0CPU += r.non0CPU
	ni.non0Mem += r.non0Mem
}

// Pod is a pod being scheduled, with what the filters and scores need
// computed once.
type Pod struct {
	Pod       *corev1.Pod
	res       podResources
	affinity  nodeaffinity.RequiredNodeAffinity
	preferred *nodeaffinity.PreferredSchedulingTerms
	// preferNoSchedule are the tolerations that can tolerate
	// PreferNoSchedule taints (effect empty or PreferNoSchedule).
	preferNoSchedule []corev1.Toleration
	priority         int32
	nominatedTo      *NodeInfo
	err              error
}

// NewPod prepares pod for scheduling.
func NewPod(pod *corev1.Pod) *Pod {
	p := &Pod{Pod: pod, res: resourcesOf(pod), affinity: nodeaffinity.GetRequiredNodeAffinity(pod), priority: corev1helpers.PodPriority(pod)}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution != nil {
		p.preferred, p.err = nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			p.preferNoSchedule = append(p.preferNoSchedule, t)
		}
	}
	return p
}

// Fits reports whether the filters of the default profile admit p on ni.
func (p *Pod) Fits(ni *NodeInfo) bool {
	node := ni.Node
	// nodeunschedulable/node_unschedulable.go
	if node.Spec.Unschedulable && !corev1helpers.TolerationsTolerateTaint(logr.Discard(), p.Pod.Spec.Tolerations,
		&corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}, false) {
		return false
	}
	// tainttoleration/taint_toleration.go Filter
	if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, p.Pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false); untolerated {
		return false
	}
	// nodeaffinity/node_affinity.go Filter (parse errors mean no match)
	if ok, _ := p.affinity.Match(node); !ok {
		return false
	}
	return p.fitsResources(ni)
}

// fitsResources mirrors noderesources/fit.go fitsRequest, on the node with
// the pods nominated to it added as kube-scheduler's
// RunFilterPluginsWithNominatedPods adds them (addGENominatedPods): those
// of equal or higher priority than p, p itself excepted. (It also runs the
// filters without them; for resources that pass is implied.)
func (p *Pod) fitsResources(ni *NodeInfo) bool {
	pods := int64(ni.Pods)
	var held map[corev1.ResourceName]int64
	for _, np := range ni.nominated {
		if np == p || np.priority < p.priority || (np.Pod.UID != "" && np.Pod.UID == p.Pod.UID) {
			continue
		}
		if held == nil {
			held = map[corev1.ResourceName]int64{}
		}
		pods++
		for name, v := range np.res.requested {
			held[name] += v
		}
	}
	if pods+1 > ni.allocatable[corev1.ResourcePods] {
		return false
	}
	for name, v := range p.res.requested {
		if v <= 0 || name == corev1.ResourcePods {
			continue
		}
		if v > ni.allocatable[name]-ni.requested[name]-held[name] {
			return false
		}
	}
	return true
}

// Scores returns the total score of each node in feasible (all of which
// must pass Fits) under profile, as kube-scheduler's framework computes it
// (framework/runtime/framework.go RunScorePlugins): each score plugin's
// scores, normalized where the plugin normalizes, times its weight, summed.
func Scores(profile Profile, p *Pod, feasible []*NodeInfo) []int64 {
	total := make([]int64, len(feasible))
	mostAllocated, fitResources := profile.FitStrategy()
	// NodeResourcesFit (noderesources/fit.go Score, resource_allocation.go
	// with useRequested false): not normalized.
	for i, ni := range feasible {
		total[i] += WeightNodeResourcesFit * p.fitScore(ni, mostAllocated, fitResources)
	}
	// NodeResourcesBalancedAllocation (noderesources/balanced_allocation.go):
	// skipped for pods requesting neither cpu nor memory.
	if p.res.requested[corev1.ResourceCPU] != 0 || p.res.requested[corev1.ResourceMemory] != 0 {
		for i, ni := range feasible {
			total[i] += WeightBalancedAllocation * p.balancedScore(ni)
		}
	}
	// TaintToleration (tainttoleration/taint_toleration.go): intolerable
	// PreferNoSchedule taints, normalized in reverse.
	counts := make([]int64, len(feasible))
	for i, ni := range feasible {
		for j := range ni.Node.Spec.Taints {
			t := &ni.Node.Spec.Taints[j]
			if t.Effect == corev1.TaintEffectPreferNoSchedule && !corev1helpers.TolerationsTolerateTaint(logr.Discard(), p.preferNoSchedule, t, false) {
				counts[i]++
			}
		}
	}
	for i, s := range normalize(counts, true) {
		total[i] += WeightTaintToleration * s
	}
	// NodeAffinity (nodeaffinity/node_affinity.go): the weights of the
	// preferred terms a node matches, normalized; skipped without terms.
	if p.preferred != nil {
		sums := make([]int64, len(feasible))
		for i, ni := range feasible {
			sums[i] = p.preferred.Score(ni.Node)
		}
		for i, s := range normalize(sums, false) {
			total[i] += WeightNodeAffinity * s
		}
	}
	return total
}

// allocation returns, for one resource of a node, what is allocatable,
// what pods already request and what they would request with p
// (noderesources/resource_allocation.go calculateNodeAllocatableRequest);
// ok is false when the resource is left out of the score.
func (p *Pod) allocation(ni *NodeInfo, name corev1.ResourceName, useRequested bool) (allocatable, allocated, requested int64, ok bool) {
	podReq := p.res.requested[name]
	var nodeReq int64
	switch name {
	case corev1.ResourceCPU:
		nodeReq = ni.requested[name]
		if !useRequested {
			podReq, nodeReq = p.res.non0CPU, ni.non0CPU
		}
	case corev1.ResourceMemory:
		nodeReq = ni.requested[name]
		if !useRequested {
			podReq, nodeReq = p.res.non0Mem, ni.non0Mem
		}
	case corev1.ResourceEphemeralStorage:
		nodeReq = ni.requested[name]
	default:
		// Scalar (extended, hugepages) resources count only when the pod
		// requests them and the node has them.
		if podReq == 0 {
			return 0, 0, 0, false
		}
		if _, exists := ni.allocatable[name]; !exists {
			return 0, 0, 0, false
		}
		nodeReq = ni.requested[name]
	}
	allocatable = ni.allocatable[name]
	if allocatable == 0 {
		return 0, 0, 0, false
	}
	return allocatable, nodeReq, nodeReq + podReq, true
}

// fitScore mirrors least_allocated.go and most_allocated.go.
func (p *Pod) fitScore(ni *NodeInfo, mostAllocated bool, resources []ResourceWeight) int64 {
	var nodeScore, weightSum int64
	for _, r := range resources {
		capacity, _, requested, ok := p.allocation(ni, r.Name, false)
		if !ok {
			continue
		}
		var s int64
		if mostAllocated {
			s = requested * maxNodeScore / capacity
			if requested > capacity {
				s = maxNodeScore
			}
		} else if requested <= capacity {
			s = (capacity - requested) * maxNodeScore / capacity
		}
		nodeScore += s * r.Weight
		weightSum += r.Weight
	}
	if weightSum == 0 {
		return 0
	}
	return nodeScore / weightSum
}

// balancedScore mirrors balanced_allocation.go balancedResourceScorer: the
// node's balance with the pod, relative to its balance without it.
func (p *Pod) balancedScore(ni *NodeInfo) int64 {
	var with, without, capacity []int64
	for _, name := range balancedResources {
		c, allocated, requested, ok := p.allocation(ni, name, true)
		if !ok {
			continue
		}
		with, without, capacity = append(with, requested), append(without, allocated), append(capacity, c)
	}
	scoreWith, scoreWithout := balance(with, capacity), balance(without, capacity)
	return maxNodeScore/2 + (maxNodeScore/2+scoreWith-scoreWithout)/2
}

// balance mirrors balanced_allocation.go balancedResourceScore.
func balance(requested, allocatable []int64) int64 {
	fractions := make([]float64, 0, len(requested))
	var total float64
	for i := range requested {
		f := float64(requested[i]) / float64(allocatable[i])
		if f > 1 {
			f = 1
		}
		total += f
		fractions = append(fractions, f)
	}
	std := 0.0
	switch {
	case len(fractions) == 2:
		std = math.Abs((fractions[0] - fractions[1]) / 2)
	case len(fractions) > 2:
		mean := total / float64(len(fractions))
		var sum float64
		for _, f := range fractions {
			sum += (f - mean) * (f - mean)
		}
		std = math.Sqrt(sum / float64(len(fractions)))
	}
	return int64((1 - std) * float64(maxNodeScore))
}

// normalize mirrors plugins/helper/normalize_score.go DefaultNormalizeScore.
func normalize(scores []int64, reverse bool) []int64 {
	out := make([]int64, len(scores))
	var highest int64
	for _, s := range scores {
		highest = max(highest, s)
	}
	for i, s := range scores {
		switch {
		case highest == 0 && reverse:
			out[i] = maxNodeScore
		case highest == 0:
			out[i] = 0
		default:
			out[i] = maxNodeScore * s / highest
			if reverse {
				out[i] = maxNodeScore - out[i]
			}
		}
	}
	return out
}

// Result is one scheduling decision.
type Result struct {
	// Node is the chosen node; nil when no node passes the filters.
	Node *NodeInfo
	// Feasible are the nodes that pass the filters, with their Scores
	// (nil when the nominated node was taken or only one node fits: then
	// kube-scheduler does not score).
	Feasible []*NodeInfo
	Scores   []int64
	// Err is set when the pod's preferred node affinity does not parse:
	// kube-scheduler fails the scheduling cycle (NodeAffinity PreScore).
	Err error
}

// Schedule picks p's node among nodes as kube-scheduler does
// (schedule_one.go schedulePod): the pod's nominated node if it passes the
// filters; else the only feasible node; else the feasible node with the
// highest total score, the first by name among equals (kube-scheduler
// picks one of them at random).
func Schedule(profile Profile, p *Pod, nodes []*NodeInfo) Result {
	if nnn := p.Pod.Status.NominatedNodeName; nnn != "" {
		for _, ni := range nodes {
			if ni.Node.Name == nnn && p.Fits(ni) {
				return Result{Node: ni}
			}
		}
	}
	var feasible []*NodeInfo
	for _, ni := range nodes {
		if p.Fits(ni) {
			feasible = append(feasible, ni)
		}
	}
	switch len(feasible) {
	case 0:
		return Result{}
	case 1:
		return Result{Node: feasible[0], Feasible: feasible}
	}
	if p.err != nil {
		return Result{Feasible: feasible, Err: p.err}
	}
	scores := Scores(profile, p, feasible)
	best := -1
	for i := range feasible {
		if best < 0 || scores[i] > scores[best] || (scores[i] == scores[best] && feasible[i].Node.Name < feasible[best].Node.Name) {
			best = i
		}
	}
	return Result{Node: feasible[best], Feasible: feasible, Scores: scores}
}

// SortByName sorts nodes by name (the order ties are broken in).
func SortByName(nodes []*NodeInfo) {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node.Name < nodes[j].Node.Name })
}

// Reserve assigns p to ni after a decision, so later decisions see it, and
// takes p out of the nominator (the binding clears nominatedNodeName).
func (p *Pod) Reserve(ni *NodeInfo) {
	ni.add(p.res)
	if n := p.nominatedTo; n != nil {
		n.nominated = slices.DeleteFunc(n.nominated, func(np *Pod) bool { return np == p })
		p.nominatedTo = nil
	}
}
