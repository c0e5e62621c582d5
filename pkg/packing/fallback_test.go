package packing_test

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// TestPackPodsFallbacks: each planned NodeClaim may launch on its chosen
// type or on exactly the catalog's types that hold its pods at a price
// within DefaultFallbackTolerance of the chosen one (cheapest first, at
// most DefaultMaxOptions), each at its cheapest launchable offering that
// is not reserved under the NodeClaim's requirements, computed here from
// the offerings.
func TestPackPodsFallbacks(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	price := func(it *cloudprovider.InstanceType, reqs kscheduling.Requirements) float64 {
		p := math.Inf(1)
		if it.Requirements.Intersects(reqs) != nil {
			return p
		}
		for _, o := range it.Offerings.Available() {
			if o.CapacityType() != karpv1.CapacityTypeReserved && reqs.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels) {
				p = math.Min(p, o.Price)
			}
		}
		return p
	}
	fallbacks := 0
	for i := range 10 {
		pods := randomBatch(r, 1+r.Intn(60))
		plan := packing.PackPods(np, its, pods, packing.Options{})
		if len(plan.NodeClaims) == 0 {
			t.Fatalf("batch %d: no plan (%d rejected)", i, len(plan.Rejected))
		}
		for j, nc := range plan.NodeClaims {
			t.Run(fmt.Sprintf("batch %d claim %d", i, j), func(t *testing.T) {
				chosen := nc.InstanceTypeOptions[0]
				p0 := price(chosen, nc.Requirements)
				podReq := resources.Merge(lo.Map(nc.Pods, func(p *corev1.Pod, _ int) corev1.ResourceList { return resources.RequestsForPods(p) })...)
				var want []string
				type cand struct {
					name  string
					price float64
				}
				var cands []cand
				for _, it := range its {
					p := price(it, nc.Requirements)
					if it == chosen || math.IsInf(p, 1) || p < p0-1e-9 || p > p0*(1+packing.DefaultFallbackTolerance)+1e-9 {
						continue
					}
					if !resources.Fits(podReq, it.Allocatable()) {
						continue
					}
					cands = append(cands, cand{it.Name, p})
				}
				sort.SliceStable(cands, func(a, b int) bool {
					if cands[a].price != cands[b].price {
						return cands[a].price < cands[b].price
					}
					return cands[a].name < cands[b].name
				})
				want = append(want, chosen.Name)
				for _, c := range cands {
					want = append(want, c.name)
				}
				want = want[:min(len(want), packing.DefaultMaxOptions)]
				got := make([]string, len(nc.InstanceTypeOptions))
				for k, it := range nc.InstanceTypeOptions {
					got[k] = it.Name
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("options %v, want %v", got, want)
				}
				fallbacks += len(got) - 1
			})
		}
	}
	if fallbacks == 0 {
		t.Error("no NodeClaim had a fallback type: the check checked nothing")
	}
}
