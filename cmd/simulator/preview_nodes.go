package main

// simulator preview against the cluster's actual nodes (--nodes, or Nodes in
// the --cluster input): the added pods are first placed by kube-scheduler's
// filters and scores (pkg/simulation/kubescheduler, the profile of
// --scheduler-profile) on the free capacity the nodes have left after the
// pods bound to them (spec.nodeName; DaemonSet and CPU pods count); only
// the pods that fit nowhere are provisioned, by each policy from an empty
// fleet. Before is the nodes' $/h, after adds what each policy launches.

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// EKS managed node groups' capacity type label (ON_DEMAND, SPOT).
const eksCapacityTypeLabel = "eks.amazonaws.com/capacityType"

// NodePlacement is an added pod placed on one of the cluster's nodes.
type NodePlacement struct {
	Pod          string `json:"pod"`
	Node         string `json:"node"`
	InstanceType string `json:"instance_type,omitempty"`
}

// ClusterNodePrice is one of the cluster's nodes as the preview prices it.
type ClusterNodePrice struct {
	Node         string  `json:"node"`
	InstanceType string  `json:"instance_type,omitempty"`
	Zone         string  `json:"zone,omitempty"`
	CapacityType string  `json:"capacity_type"`
	USDPerHour   float64 `json:"usd_per_hour"`
	Priced       bool    `json:"priced"`
	GPUs         int64   `json:"gpus"`
}

// nodeCapacityType reads a node's capacity type: Karpenter's label, else
// EKS managed node groups', else on-demand.
func nodeCapacityType(labels map[string]string) string {
	if ct := labels[karpv1.CapacityTypeLabelKey]; ct != "" {
		return ct
	}
	switch labels[eksCapacityTypeLabel] {
	case "SPOT":
		return karpv1.CapacityTypeSpot
	case "CAPACITY_BLOCK":
		return karpv1.CapacityTypeReserved
	}
	return karpv1.CapacityTypeOnDemand
}

// priceNodes prices the cluster's nodes by instance type, zone and capacity
// type; a reserved node is priced at the type's on-demand price (what an
// On-Demand Capacity Reservation costs).
func priceNodes(nodes []workload.ClusterNode, ps catalog.PriceSource) []ClusterNodePrice {
	out := make([]ClusterNodePrice, 0, len(nodes))
	for _, cn := range nodes {
		l := cn.Node.Labels
		p := ClusterNodePrice{Node: cn.Node.Name, InstanceType: lo.CoalesceOrEmpty(l[corev1.LabelInstanceTypeStable], l[corev1.LabelInstanceType]),
			Zone: lo.CoalesceOrEmpty(l[corev1.LabelTopologyZone], l[corev1.LabelFailureDomainBetaZone]), CapacityType: nodeCapacityType(l),
			GPUs: v1alpha1.Accelerators(cn.Node.Status.Allocatable)}
		if p.InstanceType != "" {
			ct := lo.Ternary(p.CapacityType == karpv1.CapacityTypeReserved, karpv1.CapacityTypeOnDemand, p.CapacityType)
			p.USDPerHour, p.Priced = ps.Price(p.InstanceType, p.Zone, ct)
		}
		out = append(out, p)
	}
	return out
}

// podObject is the pod the simulation would create for s, with the
// tolerations the ExtendedResourceToleration admission plugin adds for its
// extended resources (as the engine's pods have them).
func podObject(s *workload.PodSpec) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.NamespaceOrDefault(), Labels: s.Labels},
		Spec: corev1.PodSpec{
			Containers:   []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{Requests: s.Requests.DeepCopy()}}},
			NodeSelector: s.NodeSelector,
			Tolerations:  append([]corev1.Toleration{}, s.Tolerations...),
		},
	}
	names := lo.Filter(lo.Keys(s.Requests), func(n corev1.ResourceName, _ int) bool {
		return n != corev1.ResourceCPU && n != corev1.ResourceMemory && n != corev1.ResourceEphemeralStorage && !strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix)
	})
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	for _, n := range names {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: string(n), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	var na *corev1.NodeAffinity
	if s.NodeAffinity != nil {
		na = s.NodeAffinity.DeepCopy()
	}
	if len(s.Requirements) > 0 {
		if na == nil {
			na = &corev1.NodeAffinity{}
		}
		if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
			na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}
		}
		terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		for i := range terms {
			terms[i].MatchExpressions = append(terms[i].MatchExpressions, s.Requirements...)
		}
	}
	if na != nil {
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: na}
	}
	return pod
}

// nodesPreview is the placement on the cluster's nodes shared by both
// policies.
type nodesPreview struct {
	prices     []ClusterNodePrice
	beforeUSD  float64
	gpusBefore int64
	placed     []NodePlacement
	overflow   []workload.PodSpec
	// clusterPending: the cluster's own pods bound to no node that fit on
	// none either (not provisioned: not the manifest's cost).
	clusterPending []string
}

// placeOnNodes runs kube-scheduler's decisions for the cluster's pending
// pods, then for the added ones, on the nodes' free capacity.
func placeOnNodes(w *workload.Workload, added map[string]bool, cn *workload.ClusterNodes, ps catalog.PriceSource, profile kubescheduler.Profile) (*nodesPreview, error) {
	np := &nodesPreview{prices: priceNodes(cn.Nodes, ps)}
	typeOf := map[string]string{}
	for _, p := range np.prices {
		np.beforeUSD += p.USDPerHour
		np.gpusBefore += p.GPUs
		typeOf[p.Node] = p.InstanceType
	}
	infos := make([]*kubescheduler.NodeInfo, 0, len(cn.Nodes))
	for _, n := range cn.Nodes {
		infos = append(infos, kubescheduler.NewNodeInfo(n.Node, cn.Bound[n.Node.Name]...))
	}
	kubescheduler.SortByName(infos)
	schedule := func(s *workload.PodSpec) (string, error) {
		p := kubescheduler.NewPod(podObject(s))
		r := kubescheduler.Schedule(profile, p, infos)
		if r.Err != nil {
			return "", fmt.Errorf("%s: pod %s: %w", s.Origin, s.Key(), r.Err)
		}
		if r.Node == nil {
			return "", nil
		}
		p.Reserve(r.Node)
		return r.Node.Node.Name, nil
	}
	// The cluster's pods that wait for a node come first: they were there
	// before the manifest.
	for i := range w.Pods {
		s := &w.Pods[i]
		if added[s.Key()] {
			continue
		}
		if _, bound := cn.BoundPods[s.Key()]; bound {
			continue
		}
		node, err := schedule(s)
		if err != nil {
			return nil, err
		}
		if node == "" {
			np.clusterPending = append(np.clusterPending, s.Key())
		}
	}
	for i := range w.Pods {
		s := &w.Pods[i]
		if !added[s.Key()] {
			continue
		}
		node, err := schedule(s)
		if err != nil {
			return nil, err
		}
		if node == "" {
			o := *s
			o.Arrival, o.Deletion = 0, workload.Forever
			np.overflow = append(np.overflow, o)
			continue
		}
		np.placed = append(np.placed, NodePlacement{Pod: s.Key(), Node: node, InstanceType: typeOf[node]})
	}
	return np, nil
}

// runPreviewOnNodes provisions, under each policy, the added pods that fit
// on none of the cluster's nodes, and reports against the nodes.
func runPreviewOnNodes(w *workload.Workload, added map[string]bool, cn *workload.ClusterNodes, cfg simulation.Config, entries []catalog.Entry, settle time.Duration) ([]*PreviewResult, *nodesPreview, error) {
	ps := cfg.Prices
	if ps == nil {
		ps = catalog.NewOnDemandPrices(lo.Ternary(cfg.Catalog != nil, cfg.Catalog, entries), cfg.Region)
	}
	np, err := placeOnNodes(w, added, cn, ps, cfg.SchedulerProfile)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*PreviewResult, len(previewPolicies))
	for i, p := range previewPolicies {
		out[i] = &PreviewResult{Policy: string(p), Baseline: baselineNodes, BeforeUSDPerHour: np.beforeUSD, AfterUSDPerHour: np.beforeUSD,
			GPUsBefore: float64(np.gpusBefore), GPUsAfter: float64(np.gpusBefore), AddedPods: len(added), OnClusterNodes: np.placed, ClusterNodes: np.prices,
			FitsOnFreeCapacity: len(np.overflow) == 0}
	}
	if len(np.overflow) == 0 {
		return out, np, nil
	}
	ow := *w
	ow.Pods = np.overflow
	ow.Excluded, ow.Window, ow.Span = nil, nil, 0
	ow.SortPods()
	overflowKeys := lo.SliceToMap(np.overflow, func(s workload.PodSpec) (string, bool) { return s.Key(), true })
	cfg.Horizon = settle
	cfg.LowerBound = bound.NewCache()
	errs := simulatePreviewPolicies(&ow, cfg, func(i int, r *report.Result) {
		pr := preview(r, 0, overflowKeys)
		o := out[i]
		o.Result = r
		o.Launched, o.AddedPodsPending = pr.Launched, pr.AddedPodsPending
		o.AfterUSDPerHour = np.beforeUSD + r.FinalFleetUSDPerHr
		o.IncrementalUSDPerHour = r.FinalFleetUSDPerHr
		o.GPUsAfter = float64(np.gpusBefore) + pr.GPUsAfter
	})
	for i, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("simulating %s: %w", previewPolicies[i], err)
		}
	}
	return out, np, nil
}

const (
	baselineNodes = "cluster nodes"
	baselineFleet = "simulated fleet"
)

func writePreviewOnNodes(w io.Writer, wl *workload.Workload, cluster, nodesFile string, add []string, settle time.Duration, cn *workload.ClusterNodes, np *nodesPreview, out []*PreviewResult) error {
	var addedGPUs int64
	addedPods := 0
	for _, p := range wl.Pods {
		if lo.ContainsBy(out[0].OnClusterNodes, func(pl NodePlacement) bool { return pl.Pod == p.Key() }) ||
			lo.ContainsBy(np.overflow, func(o workload.PodSpec) bool { return o.Key() == p.Key() }) {
			addedGPUs += p.GPUs()
			addedPods++
		}
	}
	where := cluster
	if nodesFile != "" {
		where = nodesFile
	}
	fmt.Fprintf(w, "preview: adding %s (%s, %d GPUs requested) to the %s of %s (pods bound to them: %s); placed on their free capacity first, the rest provisioned by each policy and compared %s later\n\n",
		strings.Join(add, ", "), plural(addedPods, "pod"), addedGPUs, plural(len(cn.Nodes), "node"), where, cluster, settle)
	if err := writePolicyTable(w, out); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writePlaced(w, "the cluster's nodes", np.placed)
	for _, p := range out {
		switch {
		case p.FitsOnFreeCapacity:
			fmt.Fprintf(w, "%s: fits on the cluster's free capacity (no instance launched)\n", p.Policy)
		case len(p.Launched) > 0:
			fmt.Fprintf(w, "%s: launches %s for %s\n", p.Policy, describeInstances(p.Launched), plural(len(np.overflow), "pod"))
		default:
			fmt.Fprintf(w, "%s: launches nothing\n", p.Policy)
		}
		for _, u := range p.AddedPodsPending {
			fmt.Fprintf(w, "  pod %s does not run: %s\n", u.Name, u.Reason)
		}
		if p.Result != nil && p.Result.PodsNeverStarted > 0 {
			fmt.Fprintf(w, "  %d pods had not started by the end (raise --settle)\n", p.Result.PodsNeverStarted)
		}
	}
	priced := lo.Filter(np.prices, func(p ClusterNodePrice, _ int) bool { return p.Priced })
	fmt.Fprintf(w, "\nCluster nodes: %s, %d priced ($%.3f/h)", plural(len(np.prices), "node"), len(priced), np.beforeUSD)
	if unpriced := lo.Filter(np.prices, func(p ClusterNodePrice, _ int) bool { return !p.Priced }); len(unpriced) > 0 {
		fmt.Fprintf(w, "; no price for %s: counted as $0 (before and after alike)", strings.Join(lo.Map(unpriced, func(p ClusterNodePrice, _ int) string {
			return fmt.Sprintf("%s (%s %s)", p.Node, lo.CoalesceOrEmpty(p.InstanceType, "no instance-type label"), p.CapacityType)
		}), ", "))
	}
	fmt.Fprintln(w)
	if len(np.clusterPending) > 0 {
		fmt.Fprintf(w, "Note: %s of %s bound to no node fit on none either (%s): not provisioned here, as they are not the manifest's; Karpenter would launch for them, and the manifest might share it\n",
			plural(len(np.clusterPending), "pod"), cluster, strings.Join(lo.Slice(np.clusterPending, 0, 3), ", "))
	}
	if managed := karpenterNodes(cn); len(managed) > 0 {
		fmt.Fprintf(w, "Note: %s of the cluster %s Karpenter's (%s, e.g. %s): Karpenter may consolidate %s once the manifest runs, which this preview does not model; without --nodes it gives the increment on the fleet each policy would build for the cluster's pods\n",
			plural(len(managed), "node"), lo.Ternary(len(managed) == 1, "is", "are"), karpv1.NodePoolLabelKey, managed[0], lo.Ternary(len(managed) == 1, "it", "them"))
	}
	if len(out) > 0 && out[0].Result != nil && out[0].Result.Prices != "" {
		fmt.Fprintf(w, "Prices: %s\n", out[0].Result.Prices)
	}
	for _, n := range append(append([]string{}, cn.Notes...), wl.Notes...) {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	return nil
}

// karpenterNodes are the names of the cluster's nodes a Karpenter NodePool
// owns (karpenter.sh/nodepool): the ones Karpenter may consolidate.
func karpenterNodes(cn *workload.ClusterNodes) []string {
	var out []string
	for _, n := range cn.Nodes {
		if n.Node.Labels[karpv1.NodePoolLabelKey] != "" {
			out = append(out, n.Node.Name)
		}
	}
	return out
}

// writePlaced writes the line listing the pods placed on existing nodes
// (where names those nodes); nothing when there are none.
func writePlaced(w io.Writer, where string, placed []NodePlacement) {
	if len(placed) == 0 {
		return
	}
	fmt.Fprintf(w, "on %s: %s\n", where, strings.Join(lo.Map(placed, func(pl NodePlacement, _ int) string {
		return fmt.Sprintf("%s → %s (%s)", pl.Pod, pl.Node, lo.CoalesceOrEmpty(pl.InstanceType, "type unknown"))
	}), ", "))
}
