package provisioning

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// Decision explains what the packer did with one batch: RefineResults on
// core's NodeClaims, or PackPending on the direct path.
type Decision struct {
	PodsConsidered   int // pods on core's GPU NodeClaims
	PodsRepacked     int // of those, pods on NodeClaims the packer replaced
	NodeClaimsBefore int // all NodeClaims core proposed
	NodeClaimsAfter  int // all NodeClaims returned
	// CoreCost and PackedCost are the $/h of the GPU NodeClaims before and
	// after, each NodeClaim priced at its cheapest launchable offering.
	CoreCost, PackedCost float64
	Unchanged            []Unchanged
	// Direct marks a decision of the direct path (PackPending): core's
	// scheduler did not run for these pods, so CoreCost is unknown (0).
	Direct   bool
	Duration time.Duration
}

// Unchanged records NodeClaims left exactly as core made them.
type Unchanged struct {
	NodePool   string
	NodeClaims int
	Pods       int
	Reason     string
}

func (d Decision) String() string {
	var b strings.Builder
	if d.Direct {
		fmt.Fprintf(&b, "direct: gpu pods %d (placed %d), nodeclaims %d, $/h %.4f in %s", d.PodsConsidered, d.PodsRepacked, d.NodeClaimsAfter, d.PackedCost, d.Duration)
		return b.String()
	}
	fmt.Fprintf(&b, "gpu pods %d (repacked %d), nodeclaims %d -> %d, $/h %.4f -> %.4f in %s",
		d.PodsConsidered, d.PodsRepacked, d.NodeClaimsBefore, d.NodeClaimsAfter, d.CoreCost, d.PackedCost, d.Duration)
	for _, u := range d.Unchanged {
		fmt.Fprintf(&b, "; unchanged %s: %d nodeclaims, %d pods: %s", u.NodePool, u.NodeClaims, u.Pods, u.Reason)
	}
	return b.String()
}

// RefineResults re-partitions the GPU NodeClaims core's scheduler proposed
// into the cheapest set of launches the packer finds, and returns new
// Results (the input is not modified; ExistingNodes and PodErrors are
// shared).
//
// Per NodePool, the GPU NodeClaims free of what the packer does not model
// (packing.Unmodelled: pod affinity or anti-affinity, topology spread, host
// ports, persistent volumes, DRA, minValues, a capacity reservation, a
// static pool) are given to packing.PackPods as Options.Proposed; its plan
// replaces them when it places every pod more cheaply. Everything else is
// left exactly as core made it, with the reason in Decision.Unchanged.
// opts are Packer.Inputs for the same loop.
func RefineResults(ctx context.Context, results *scheduling.Results, opts packing.Options) (*scheduling.Results, Decision) {
	start := time.Now()
	var d Decision
	if results == nil {
		return nil, d
	}
	out := *results
	out.NewNodeClaims = nil
	d.NodeClaimsBefore = len(results.NewNodeClaims)

	byPool := map[string][]*scheduling.NodeClaim{}
	var poolOrder []string
	unchanged := map[string]map[string][]*scheduling.NodeClaim{} // pool -> reason -> ncs
	keep := func(nc *scheduling.NodeClaim, reason string) {
		if unchanged[nc.NodePoolName] == nil {
			unchanged[nc.NodePoolName] = map[string][]*scheduling.NodeClaim{}
		}
		unchanged[nc.NodePoolName][reason] = append(unchanged[nc.NodePoolName][reason], nc)
	}
	var gpuClaims []*scheduling.NodeClaim
	for _, nc := range results.NewNodeClaims {
		if !lo.ContainsBy(nc.Pods, v1alpha1.UsesAccelerator) {
			out.NewNodeClaims = append(out.NewNodeClaims, nc)
			continue
		}
		gpuClaims = append(gpuClaims, nc)
		d.PodsConsidered += len(nc.Pods)
		d.CoreCost += packing.NodeClaimPrice(nc)
		if reason := packing.Unmodelled(nc); reason != "" {
			keep(nc, reason)
			continue
		}
		if _, ok := byPool[nc.NodePoolName]; !ok {
			poolOrder = append(poolOrder, nc.NodePoolName)
		}
		byPool[nc.NodePoolName] = append(byPool[nc.NodePoolName], nc)
	}

	pools := map[string]*karpv1.NodePool{}
	for _, np := range opts.NodePools {
		pools[np.Name] = np
	}
	popts := opts
	popts.ReservationsHeld = reservationsHeldBy(unchanged)
	for _, name := range poolOrder {
		ncs := byPool[name]
		if ctx.Err() != nil {
			for _, nc := range ncs {
				keep(nc, "context done before packing")
			}
			continue
		}
		var pods []*corev1.Pod
		for _, nc := range ncs {
			pods = append(pods, nc.Pods...)
		}
		popts.Proposed = ncs
		plan := packing.PackPods(pools[name], opts.InstanceTypes[name], pods, popts)
		if reason, rejected := plan.Rejected[pods[0]]; rejected {
			for _, nc := range ncs {
				keep(nc, reason)
			}
			continue
		}
		d.PodsRepacked += len(pods)
		out.NewNodeClaims = append(out.NewNodeClaims, plan.NodeClaims...)
		for _, nc := range plan.NodeClaims {
			d.PackedCost += packing.NodeClaimPrice(nc)
		}
	}
	// Unchanged GPU NodeClaims keep core's order among themselves.
	for _, nc := range gpuClaims {
		if isKept(unchanged, nc) {
			out.NewNodeClaims = append(out.NewNodeClaims, nc)
			d.PackedCost += packing.NodeClaimPrice(nc)
		}
	}
	for _, pool := range slices.Sorted(maps.Keys(unchanged)) {
		for _, reason := range slices.Sorted(maps.Keys(unchanged[pool])) {
			u := Unchanged{NodePool: pool, Reason: reason}
			for _, nc := range unchanged[pool][reason] {
				u.NodeClaims++
				u.Pods += len(nc.Pods)
			}
			d.Unchanged = append(d.Unchanged, u)
		}
	}
	d.NodeClaimsAfter = len(out.NewNodeClaims)
	d.Duration = time.Since(start)
	return &out, d
}

func isKept(unchanged map[string]map[string][]*scheduling.NodeClaim, nc *scheduling.NodeClaim) bool {
	for _, list := range unchanged[nc.NodePoolName] {
		if slices.Contains(list, nc) {
			return true
		}
	}
	return false
}

// reservationsHeldBy counts, per instance type name, the nodes that
// unchanged NodeClaims pinned to reservations may take.
func reservationsHeldBy(unchanged map[string]map[string][]*scheduling.NodeClaim) map[string]int {
	held := map[string]int{}
	for _, byReason := range unchanged {
		for _, list := range byReason {
			for _, nc := range list {
				if !nc.Requirements.Has(karpcp.ReservationIDLabel) {
					continue
				}
				for _, it := range nc.InstanceTypeOptions {
					held[it.Name]++
				}
			}
		}
	}
	return held
}
