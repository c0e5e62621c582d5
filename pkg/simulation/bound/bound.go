// Package bound integrates the fluid LP lower bound of a workload's cost
// over time: at every change of the set of alive pods, the cheapest
// fractional fleet of the catalog's types that holds them
// (pkg/packing/lowerbound), solved once per distinct multiset of alive pod
// shapes, exactly for the longest-lived ones and by solve-free bounds that
// stay valid lower bounds in between (fill.go).
package bound

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
)

// Shape is a class of pods the LP treats alike: same requests and same
// placement constraints (Key names them).
type Shape struct {
	Key      string
	Requests corev1.ResourceList
}

// Change is a change of the alive set at T: Delta pods of shape Shape
// arrive (+) or leave (-).
type Change struct {
	T     time.Duration
	Shape int
	Delta int
}

// Step is one step of the bound's $/h step function: V from T on.
type Step struct {
	T time.Duration
	V float64
}

// Solver is the fluid LP bound ($/h) of shapes over types, compatible
// saying which shape may use which type.
type Solver func(shapes []lowerbound.Shape, types []lowerbound.Type, compatible func(shape, typ int) bool) float64

// Problem is the data of the integration: the shapes, the types, which
// shape may use which type, and the changes of the alive set.
type Problem struct {
	Shapes  []Shape
	Types   []lowerbound.Type
	Compat  [][]bool // [shape][type]
	Changes []Change // sorted by T
	End     time.Duration
	Solve   Solver
	// ExactShare of the time is solved exactly (fill.go; 0 means
	// DefaultExactShare); ExactTime is the share that was, set by Integrate.
	ExactShare, ExactTime float64
	// Workers solve in parallel (0: GOMAXPROCS); once More is closed (nil:
	// never), GOMAXPROCS do. A replay computes its bound in the background
	// on one core fewer than the machine has, so as not to slow the replay
	// itself, and on all of them once the replay waits for it. Which worker
	// solves a multiset changes no value.
	Workers int
	More    <-chan struct{}
}

func (bp *Problem) exactShare() float64 {
	if bp.ExactShare <= 0 {
		return DefaultExactShare
	}
	return bp.ExactShare
}

// Integrate sweeps the change points of the alive set: the bound of each
// distinct multiset of alive shapes is solved once (in parallel), then
// integrated over time: the bound in USD, its $/h as a step function and
// the number of LP solves. It sets ExactTime.
func (bp *Problem) Integrate() (usd float64, series []Step, solves int) {
	type step struct {
		t, next time.Duration
		key     string
	}
	counts := make([]int, len(bp.Shapes))
	multisets := map[string][]int{}
	var steps []step
	for i := 0; i < len(bp.Changes); {
		t := bp.Changes[i].T
		for ; i < len(bp.Changes) && bp.Changes[i].T == t; i++ {
			counts[bp.Changes[i].Shape] += bp.Changes[i].Delta
		}
		next := bp.End
		if i < len(bp.Changes) {
			next = bp.Changes[i].T
		}
		var key strings.Builder
		for s, n := range counts {
			if n > 0 {
				fmt.Fprintf(&key, "%d:%d,", s, n)
			}
		}
		k := key.String()
		if _, ok := multisets[k]; !ok {
			multisets[k] = append([]int(nil), counts...)
		}
		steps = append(steps, step{t, next, k})
	}
	duration := map[string]time.Duration{}
	for _, s := range steps {
		duration[s.key] += s.next - s.t
	}
	exact := exactKeys(duration, bp.exactShare())
	keys := make([]string, 0, len(exact))
	for k := range exact {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := make([]float64, len(keys))
	var claimed atomic.Int64
	worker := func(wg *sync.WaitGroup) {
		defer wg.Done()
		for {
			i := int(claimed.Add(1)) - 1
			if i >= len(keys) {
				return
			}
			values[i] = bp.bound(multisets[keys[i]])
		}
	}
	all := max(1, runtime.GOMAXPROCS(0))
	workers := all
	if bp.Workers > 0 {
		workers = min(bp.Workers, all)
	}
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go worker(&wg)
	}
	finished, boosted := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(boosted)
		if workers == all || bp.More == nil {
			return
		}
		select {
		case <-bp.More:
			var extra sync.WaitGroup
			extra.Add(all - workers)
			for range all - workers {
				go worker(&extra)
			}
			extra.Wait()
		case <-finished:
		}
	}()
	wg.Wait()
	close(finished)
	<-boosted
	byKey := make(map[string]float64, len(keys))
	for i, k := range keys {
		byKey[k] = values[i]
	}
	// The other moments: the best solve-free bound, from the nearest
	// solved moments before and after (fill.go).
	cb := bp.cheapBound()
	prev, next := make([]int, len(steps)), make([]int, len(steps))
	last := -1
	for i, s := range steps {
		if exact[s.key] {
			last = i
		}
		prev[i] = last
	}
	last = -1
	for i := len(steps) - 1; i >= 0; i-- {
		if exact[steps[i].key] {
			last = i
		}
		next[i] = last
	}
	var exactTime, total time.Duration
	for i, s := range steps {
		rate, ok := byKey[s.key]
		if ok {
			exactTime += s.next - s.t
		} else {
			counts := multisets[s.key]
			rate = cb.perResource(counts)
			for _, a := range []int{prev[i], next[i]} {
				if a >= 0 {
					rate = math.Max(rate, cb.fromAnchor(byKey[steps[a].key], multisets[steps[a].key], counts))
				}
			}
		}
		if math.IsNaN(rate) || rate < 0 {
			// Never report a broken bound as a number (and JSON has no NaN).
			rate = 0
		}
		total += s.next - s.t
		series = append(series, Step{s.t, rate})
		usd += rate * (s.next - s.t).Hours()
	}
	bp.ExactTime = 1
	if total > 0 {
		bp.ExactTime = float64(exactTime) / float64(total)
	}
	return usd, series, len(keys)
}

func (bp *Problem) bound(counts []int) float64 {
	var idx []int
	for s, n := range counts {
		if n > 0 {
			idx = append(idx, s)
		}
	}
	if len(idx) == 0 {
		return 0
	}
	lbShapes := make([]lowerbound.Shape, len(idx))
	for i, s := range idx {
		lbShapes[i] = lowerbound.Shape{Requests: bp.Shapes[s].Requests, Count: counts[s]}
	}
	return bp.Solve(lbShapes, bp.Types, func(s, t int) bool { return bp.Compat[idx[s]][t] })
}
