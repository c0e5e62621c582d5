package bound

// Solving the fluid LP at every change of the alive set costs ~0.1 s per
// distinct multiset, thousands of times for a long trace: most of a replay's
// CPU. The moments that carry most of the time are solved exactly; the
// short ones in between get a bound that needs no solve and is still a
// valid lower bound:
//
//   - per resource: Σ_s n_s·req_{s,r}·(cheapest price per unit of r among
//     types that fit s), maximised over r (lowerbound's own fallback);
//   - from a solved neighbour A: LP(M) ≥ LP(A) − Σ_{p ∈ A∖M} LP({p}). The LP
//     is monotone and subadditive (the sum of two feasible fractional
//     fleets is feasible for the union), so LP(A) ≤ LP(M ∪ (A∖M)) ≤ LP(M) +
//     LP(A∖M), and LP({p}) is at most the pod's cheapest fractional share
//     of one type, min_t price_t·max_r req_r/alloc_{t,r}.

import (
	"math"
	"sort"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
)

// DefaultExactShare is the share of simulated time whose bound is solved
// exactly by default.
const DefaultExactShare = 0.9

// minExactSolves multisets are always solved exactly (cheap).
const minExactSolves = 200

// cheapBound holds, per shape, what the solve-free bounds need.
type cheapBound struct {
	single  []float64   // LP({p}) upper bound per shape; 0 if no type fits
	perUnit [][]float64 // [shape][resource] req · cheapest price per unit
	nRes    int
}

func (bp *Problem) cheapBound() *cheapBound {
	resIdx := map[string]int{}
	for _, s := range bp.Shapes {
		for name, q := range s.Requests {
			if q.Sign() > 0 && lowerbound.Modelled(name) {
				if _, ok := resIdx[string(name)]; !ok {
					resIdx[string(name)] = len(resIdx)
				}
			}
		}
	}
	cb := &cheapBound{single: make([]float64, len(bp.Shapes)), perUnit: make([][]float64, len(bp.Shapes)), nRes: len(resIdx)}
	for s, sh := range bp.Shapes {
		req := make([]float64, len(resIdx))
		for name, q := range sh.Requests {
			if i, ok := resIdx[string(name)]; ok {
				req[i] = math.Max(q.AsApproximateFloat64(), 0)
			}
		}
		cb.single[s] = math.Inf(1)
		per := make([]float64, len(resIdx))
		for r := range per {
			per[r] = math.Inf(1)
		}
		for t, typ := range bp.Types {
			if !bp.Compat[s][t] {
				continue
			}
			share, fits := 0.0, true
			alloc := make([]float64, len(resIdx))
			for name, q := range typ.Allocatable {
				if i, ok := resIdx[string(name)]; ok {
					alloc[i] = q.AsApproximateFloat64()
				}
			}
			for r, x := range req {
				if x == 0 {
					continue
				}
				if alloc[r] < x {
					fits = false
					break
				}
				share = math.Max(share, x/alloc[r])
			}
			if !fits {
				continue
			}
			cb.single[s] = math.Min(cb.single[s], typ.Price*share)
			for r, x := range req {
				if x > 0 {
					per[r] = math.Min(per[r], typ.Price/alloc[r])
				}
			}
		}
		if math.IsInf(cb.single[s], 1) {
			// No type holds the shape: the LP leaves it out.
			cb.single[s] = 0
			per = make([]float64, len(resIdx))
		}
		for r := range per {
			if req[r] == 0 {
				per[r] = 0 // not +Inf·0: the shape uses none of r
				continue
			}
			per[r] *= req[r]
		}
		cb.perUnit[s] = per
	}
	return cb
}

// perResource is the per-resource bound of counts.
func (cb *cheapBound) perResource(counts []int) float64 {
	best := 0.0
	for r := 0; r < cb.nRes; r++ {
		sum := 0.0
		for s, n := range counts {
			if n > 0 {
				sum += float64(n) * cb.perUnit[s][r]
			}
		}
		best = math.Max(best, sum)
	}
	return best
}

// fromAnchor is LP(anchor) minus what the pods of the anchor missing from
// counts could account for.
func (cb *cheapBound) fromAnchor(value float64, anchor, counts []int) float64 {
	for s, a := range anchor {
		if a > counts[s] {
			value -= float64(a-counts[s]) * cb.single[s]
		}
	}
	return value
}

// exactKeys picks the multisets to solve: the longest-lived first until
// they cover share of the time (at least minExactSolves of them).
func exactKeys(duration map[string]time.Duration, share float64) map[string]bool {
	keys := make([]string, 0, len(duration))
	var total time.Duration
	for k, d := range duration {
		keys = append(keys, k)
		total += d
	}
	sort.Slice(keys, func(i, j int) bool {
		if duration[keys[i]] != duration[keys[j]] {
			return duration[keys[i]] > duration[keys[j]]
		}
		return keys[i] < keys[j]
	})
	exact := map[string]bool{}
	var covered time.Duration
	for i, k := range keys {
		if i >= minExactSolves && share < 1 && float64(covered) >= share*float64(total) {
			break
		}
		exact[k] = true
		covered += duration[k]
	}
	return exact
}
