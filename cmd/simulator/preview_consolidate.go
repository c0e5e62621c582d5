package main

// simulator preview --nodes with the cluster's Karpenter nodes consolidated
// (--consolidate, the default): the nodes a Karpenter NodePool owns
// (karpenter.sh/nodepool) whose instance type the catalog prices start
// each policy's simulated fleet (simulation.Config.InitialNodes: NodeClaims
// of the simulated NodePool, launched on the fake fleet at t=0), with the
// cluster's pods bound to them arriving at t=0; each policy may
// consolidate them before the manifest arrives (--at) and after, for
// --settle. The other nodes (managed node groups, unpriced types, types
// the NodePool cannot launch) stay as they are: the added pods are placed
// on their free capacity first, as without --consolidate, and their $/h is
// added to before and after alike. Before is then the consolidated fleet
// just before the manifest arrives, after the fleet at the end, and the
// increment the manifest's own; the nodes as they are give
// cluster_nodes_usd_per_hour.

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

const baselineConsolidated = "cluster nodes, Karpenter's consolidated"

// Consolidation is what one policy did to the cluster's Karpenter nodes
// before the manifest arrived.
type Consolidation struct {
	// Nodes are the Karpenter nodes the simulation started from.
	Nodes []string `json:"nodes"`
	// NodesUSDPerHour is their $/h as they are; FleetUSDPerHour the
	// policy's fleet for their pods just before the manifest arrives.
	NodesUSDPerHour float64 `json:"nodes_usd_per_hour"`
	FleetUSDPerHour float64 `json:"fleet_usd_per_hour"`
	// Retired are the instances of those nodes gone by then; Launched those
	// launched in their place.
	Retired  []report.InstanceRun `json:"retired,omitempty"`
	Launched []report.InstanceRun `json:"launched,omitempty"`
	// ClusterPodsPending are pods bound to the Karpenter nodes that the
	// simulated fleet did not run (e.g. a node selector on a label of the
	// cluster's own NodePool, which the simulated one lacks).
	ClusterPodsPending []report.UnschedulablePod `json:"cluster_pods_pending,omitempty"`
}

// karpenterNodeSplit splits the cluster's nodes into those the simulation
// starts from (a Karpenter NodePool's, priced, not in keep) and those kept
// as they are.
func karpenterNodeSplit(cn *workload.ClusterNodes, prices []ClusterNodePrice, keep map[string]string) (managed []simulation.InitialNode, kept []workload.ClusterNode) {
	byName := lo.SliceToMap(prices, func(p ClusterNodePrice) (string, ClusterNodePrice) { return p.Node, p })
	for _, n := range cn.Nodes {
		p := byName[n.Node.Name]
		if _, k := keep[n.Node.Name]; k || n.Node.Labels[karpv1.NodePoolLabelKey] == "" || !p.Priced {
			kept = append(kept, n)
			continue
		}
		managed = append(managed, simulation.InitialNode{Name: n.Node.Name, InstanceType: p.InstanceType, Zone: p.Zone, CapacityType: p.CapacityType, Labels: n.Node.Labels})
	}
	return managed, kept
}

// runPreviewConsolidating runs the preview with the cluster's Karpenter
// nodes as each policy's starting fleet. It returns nil results when the
// cluster has no such node (the caller previews on the nodes as they are).
// A node the simulated NodePool cannot launch is kept as it is (keep says
// why) and the run starts again without it; the nodes of kept0 are kept
// from the start.
func runPreviewConsolidating(w *workload.Workload, added map[string]bool, cn *workload.ClusterNodes, cfg simulation.Config, entries []catalog.Entry, at, settle time.Duration, kept0 map[string]string) ([]*PreviewResult, *nodesPreview, map[string]string, error) {
	ps := cfg.Prices
	if ps == nil {
		ps = catalog.NewOnDemandPrices(lo.Ternary(cfg.Catalog != nil, cfg.Catalog, entries), cfg.Region)
	}
	all := priceNodes(cn.Nodes, ps)
	keep := maps.Clone(kept0)
	if keep == nil {
		keep = map[string]string{}
	}
	for {
		managed, kept := karpenterNodeSplit(cn, all, keep)
		if len(managed) == 0 {
			return nil, nil, keep, nil
		}
		out, np, err := previewConsolidating(w, added, cn, kept, managed, all, cfg, ps, at, settle)
		var ine *simulation.InitialNodeError
		if errors.As(err, &ine) {
			if _, again := keep[ine.Node]; again {
				return nil, nil, nil, err
			}
			keep[ine.Node] = ine.Reason
			continue
		}
		return out, np, keep, err
	}
}

func previewConsolidating(w *workload.Workload, added map[string]bool, cn *workload.ClusterNodes, kept []workload.ClusterNode, managed []simulation.InitialNode,
	all []ClusterNodePrice, cfg simulation.Config, ps catalog.PriceSource, at, settle time.Duration) ([]*PreviewResult, *nodesPreview, error) {
	managedNames := lo.SliceToMap(managed, func(n simulation.InitialNode) (string, bool) { return n.Name, true })
	// The kept nodes take the cluster's pending pods and then the added
	// pods, as without --consolidate.
	keptNodes := &workload.ClusterNodes{Nodes: kept, Bound: cn.Bound, BoundPods: cn.BoundPods}
	np, err := placeOnNodes(w, added, keptNodes, ps, cfg.SchedulerProfile)
	if err != nil {
		return nil, nil, err
	}
	np.prices = all
	var nodesUSD, fleetNodesUSD float64
	for _, p := range all {
		nodesUSD += p.USDPerHour
		if managedNames[p.Node] {
			fleetNodesUSD += p.USDPerHour
		}
	}
	keptUSD, keptGPUs := np.beforeUSD, np.gpusBefore
	// The simulated workload: the pods bound to the Karpenter nodes from
	// t=0, the added pods no kept node takes at `at`.
	sw := *w
	sw.Pods = nil
	for _, p := range w.Pods {
		if managedNames[cn.BoundPods[p.Key()]] && !added[p.Key()] {
			p.Arrival, p.Deletion = 0, workload.Forever
			sw.Pods = append(sw.Pods, p)
		}
	}
	overflowKeys := map[string]bool{}
	for _, p := range np.overflow {
		p.Arrival, p.Deletion = at, workload.Forever
		sw.Pods = append(sw.Pods, p)
		overflowKeys[p.Key()] = true
	}
	sw.Excluded, sw.Window, sw.Span = nil, nil, 0
	sw.SortPods()
	cfg.InitialNodes = managed
	if len(cfg.Zones) == 0 {
		// The fleet's default zones and those the nodes run in.
		zones := []string{cfg.Region + "a", cfg.Region + "b", cfg.Region + "c"}
		for _, n := range managed {
			if strings.HasPrefix(n.Zone, cfg.Region) && !slices.Contains(zones, n.Zone) {
				zones = append(zones, n.Zone)
			}
		}
		cfg.Zones = zones
	}
	cfg.Horizon = at + settle
	cfg.LowerBound = bound.NewCache()
	out := make([]*PreviewResult, len(previewPolicies))
	errs := simulatePreviewPolicies(&sw, cfg, func(i int, r *report.Result) {
		pr := preview(r, at, overflowKeys)
		o := &PreviewResult{Policy: string(previewPolicies[i]), Baseline: baselineConsolidated, Result: r, AddedPods: len(added),
			ClusterNodesUSDPerHour: nodesUSD, ClusterNodes: all, OnClusterNodes: np.placed,
			BeforeUSDPerHour: keptUSD + pr.BeforeUSDPerHour, AfterUSDPerHour: keptUSD + r.FinalFleetUSDPerHr,
			GPUsBefore: float64(keptGPUs) + pr.GPUsBefore, GPUsAfter: float64(keptGPUs) + pr.GPUsAfter,
			Launched: pr.Launched, Terminated: pr.Terminated, AddedPodsPending: pr.AddedPodsPending,
			Consolidation: &Consolidation{Nodes: lo.Keys(managedNames), NodesUSDPerHour: fleetNodesUSD, FleetUSDPerHour: pr.BeforeUSDPerHour}}
		sort.Strings(o.Consolidation.Nodes)
		o.IncrementalUSDPerHour = pr.IncrementalUSDPerHour
		o.FitsOnFreeCapacity = len(pr.Launched) == 0 && len(pr.AddedPodsPending) == 0 && r.PodsNeverStarted == 0
		for _, u := range r.UnschedulablePods {
			if !pr.isAdded(u) {
				o.Consolidation.ClusterPodsPending = append(o.Consolidation.ClusterPodsPending, u)
			}
		}
		atH := at.Hours()
		for _, in := range r.Instances {
			switch {
			case in.StartHours == 0 && in.EndHours < atH:
				o.Consolidation.Retired = append(o.Consolidation.Retired, in)
			case in.StartHours > 0 && in.StartHours < atH && in.EndHours >= atH:
				o.Consolidation.Launched = append(o.Consolidation.Launched, in)
			}
		}
		out[i] = o
	})
	if err := errors.Join(errs...); err != nil {
		var ine *simulation.InitialNodeError
		if errors.As(err, &ine) {
			return nil, nil, ine
		}
		return nil, nil, err
	}
	return out, np, nil
}

func writePreviewConsolidated(w io.Writer, wl *workload.Workload, cluster, nodesFile string, add []string, at, settle time.Duration, cn *workload.ClusterNodes, np *nodesPreview, keep map[string]string, out []*PreviewResult) error {
	addedPods, addedGPUs := 0, int64(0)
	for _, p := range wl.Pods {
		if p.Arrival == at {
			addedPods++
			addedGPUs += p.GPUs()
		}
	}
	where := lo.Ternary(nodesFile != "", nodesFile, cluster)
	c := out[0].Consolidation
	fmt.Fprintf(w, "preview: adding %s (%s, %d GPUs requested) to the %s of %s (pods bound to them: %s); Karpenter's nodes (%s) start each policy's fleet, which may consolidate them for %s before the manifest arrives; compared %s after it\n\n",
		strings.Join(add, ", "), plural(addedPods, "pod"), addedGPUs, plural(len(cn.Nodes), "node"), where, cluster,
		someNames(c.Nodes), at, settle)
	if err := writePolicyTable(w, out); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nCluster nodes as they are: $%.3f/h, of which Karpenter's (%s) $%.3f/h", out[0].ClusterNodesUSDPerHour, someNames(c.Nodes), c.NodesUSDPerHour)
	if unpriced := lo.Filter(np.prices, func(p ClusterNodePrice, _ int) bool { return !p.Priced }); len(unpriced) > 0 {
		fmt.Fprintf(w, "; no price for %s: counted as $0 (before and after alike)", strings.Join(lo.Map(unpriced, func(p ClusterNodePrice, _ int) string {
			return fmt.Sprintf("%s (%s %s)", p.Node, lo.CoalesceOrEmpty(p.InstanceType, "no instance-type label"), p.CapacityType)
		}), ", "))
	}
	fmt.Fprintln(w)
	for _, p := range out {
		pc := p.Consolidation
		if len(pc.Retired) == 0 && len(pc.Launched) == 0 {
			fmt.Fprintf(w, "%s: keeps the Karpenter nodes as they are ($%.3f/h)\n", p.Policy, pc.FleetUSDPerHour)
		} else {
			fmt.Fprintf(w, "%s: consolidates the Karpenter nodes to $%.3f/h before the manifest", p.Policy, pc.FleetUSDPerHour)
			if len(pc.Retired) > 0 {
				fmt.Fprintf(w, ": retires %s", describeInstances(pc.Retired))
			}
			if len(pc.Launched) > 0 {
				fmt.Fprintf(w, "; launches %s", describeInstances(pc.Launched))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
	writePlaced(w, "the cluster's other nodes", np.placed)
	for _, p := range out {
		writeOutcome(w, p, "the manifest ", "the manifest fits on free capacity")
	}
	for _, p := range out {
		if pending := p.Consolidation.ClusterPodsPending; len(pending) > 0 {
			fmt.Fprintf(w, "Note: under %s, %s bound to the Karpenter nodes did not run in the simulation (e.g. %s: %s): the starting fleet holds less than the cluster does\n",
				p.Policy, plural(len(pending), "pod"), pending[0].Name, pending[0].Reason)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(keep)) {
		fmt.Fprintf(w, "Note: Karpenter node %s kept as it is: %s\n", name, keep[name])
	}
	if len(np.clusterPending) > 0 {
		fmt.Fprintf(w, "Note: %s of %s bound to no node fit on the other nodes neither (%s): not provisioned here, as they are not the manifest's\n",
			plural(len(np.clusterPending), "pod"), cluster, strings.Join(lo.Slice(np.clusterPending, 0, 3), ", "))
	}
	fmt.Fprintln(w, "Note: the pods bound to the Karpenter nodes are placed again by the simulation (kube-scheduler's rules on the simulated nodes), not kept where they run; DaemonSet and CPU-only pods on them are not replayed")
	if out[0].Result.Prices != "" {
		fmt.Fprintf(w, "Prices: %s\n", out[0].Result.Prices)
	}
	for _, n := range append(append([]string{}, cn.Notes...), wl.Notes...) {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	return nil
}

// someNames lists up to five names.
func someNames(names []string) string {
	s := strings.Join(lo.Slice(names, 0, 5), ", ")
	if len(names) > 5 {
		s += fmt.Sprintf(" and %d more", len(names)-5)
	}
	return s
}
