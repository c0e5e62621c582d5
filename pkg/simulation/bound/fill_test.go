package bound

import (
	"math"
	"math/rand"
	"reflect"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog/catalogtest"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
)

// The solve-free bounds never exceed the LP they stand in for: random
// alive sets around a random solved neighbour, over the embedded catalog.
func TestSolveFreeBoundsAreLowerBounds(t *testing.T) {
	its := catalogtest.InstanceTypes(t, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a"}, CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})
	bp := &Problem{Solve: solve}
	for _, it := range its {
		bp.Types = append(bp.Types, lowerbound.Type{Name: it.Name, Allocatable: it.Allocatable(), Price: it.Offerings.Cheapest().Price})
	}
	for _, s := range [][3]int64{{4000, 16384, 1}, {8000, 30000, 1}, {12000, 60000, 2}, {32000, 120000, 4}, {64000, 400000, 8}, {2000, 8000, 0}, {900000, 1, 1}} {
		req := corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(s[0], resource.DecimalSI), corev1.ResourceMemory: *resource.NewQuantity(s[1]<<20, resource.BinarySI)}
		if s[2] > 0 {
			req[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(s[2], resource.DecimalSI)
		}
		bp.Shapes = append(bp.Shapes, Shape{Requests: req})
		compat := make([]bool, len(bp.Types))
		for i := range compat {
			compat[i] = true
		}
		bp.Compat = append(bp.Compat, compat)
	}
	cb := bp.cheapBound()
	if cb.single[len(bp.Shapes)-1] != 0 {
		t.Errorf("a shape no type holds must count 0 (the LP leaves it out), got %v", cb.single[len(bp.Shapes)-1])
	}
	r := rand.New(rand.NewSource(7))
	random := func() []int {
		c := make([]int, len(bp.Shapes))
		for i := range c {
			c[i] = r.Intn(6)
		}
		return c
	}
	for i := 0; i < 25; i++ {
		anchor, m := random(), random()
		lpA, lpM := bp.bound(anchor), bp.bound(m)
		for _, v := range []float64{cb.fromAnchor(lpA, anchor, m), cb.perResource(m)} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("solve-free bound %v is not a finite number (alive %v)", v, m)
			}
		}
		if got := cb.fromAnchor(lpA, anchor, m); got > lpM*(1+1e-9)+1e-9 {
			t.Fatalf("bound from a solved neighbour %v > LP %v (anchor %v, alive %v)", got, lpM, anchor, m)
		}
		if got := cb.perResource(m); got > lpM*(1+1e-9)+1e-9 {
			t.Fatalf("per-resource bound %v > LP %v (alive %v)", got, lpM, m)
		}
		if got := cb.fromAnchor(lpM, m, m); math.Abs(got-lpM) > 1e-9 {
			t.Fatalf("bound from itself = %v, want its LP %v", got, lpM)
		}
	}
}

func TestExactKeysCoverTheLongestLived(t *testing.T) {
	d := map[string]time.Duration{}
	for i := 0; i < 1000; i++ {
		d[string(rune('a'+i%26))+string(rune('A'+i/26))] = time.Duration(i+1) * time.Second
	}
	for _, share := range []float64{0.5, 0.9, 1} {
		exact := exactKeys(d, share)
		var covered, total time.Duration
		minExact, maxOther := time.Duration(math.MaxInt64), time.Duration(0)
		for k, v := range d {
			total += v
			if exact[k] {
				covered += v
				minExact = min(minExact, v)
			} else {
				maxOther = max(maxOther, v)
			}
		}
		if float64(covered) < share*float64(total) || len(exact) < minExactSolves {
			t.Errorf("share %v: %d exact keys cover %v of %v", share, len(exact), covered, total)
		}
		if maxOther > minExact {
			t.Errorf("share %v: a %v-long alive set is not solved while a %v-long one is", share, maxOther, minExact)
		}
		if share == 1 && len(exact) != len(d) {
			t.Errorf("share 1 solved %d of %d", len(exact), len(d))
		}
	}
}

func solve(shapes []lowerbound.Shape, types []lowerbound.Type, compatible func(shape, typ int) bool) float64 {
	return lowerbound.Bound(shapes, types, lowerbound.Options{Compatible: compatible}).Cost
}

// Solving on fewer workers first and on all of them once More is closed
// (a replay's background bound) gives the same bound, series and solve
// count as solving on all workers from the start.
func TestWorkersChangeNothing(t *testing.T) {
	mk := func() *Problem {
		bp := &Problem{End: 50 * time.Hour, ExactShare: 1}
		bp.Types = []lowerbound.Type{
			{Name: "small", Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}, Price: 1},
			{Name: "big", Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16")}, Price: 3.5},
		}
		for _, cpu := range []string{"1", "3", "6"} {
			bp.Shapes = append(bp.Shapes, Shape{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}})
			bp.Compat = append(bp.Compat, []bool{true, true})
		}
		r := rand.New(rand.NewSource(3))
		for i := 0; i < 300; i++ {
			s := r.Intn(3)
			at := time.Duration(r.Intn(40*60)) * time.Minute
			bp.Changes = append(bp.Changes, Change{T: at, Shape: s, Delta: 1}, Change{T: at + time.Duration(1+r.Intn(600))*time.Minute, Shape: s, Delta: -1})
		}
		sort.SliceStable(bp.Changes, func(i, j int) bool { return bp.Changes[i].T < bp.Changes[j].T })
		// A solver whose value depends only on the multiset.
		bp.Solve = func(shapes []lowerbound.Shape, _ []lowerbound.Type, _ func(int, int) bool) float64 {
			v := 0.0
			for _, s := range shapes {
				v += float64(s.Count) * s.Requests.Cpu().AsApproximateFloat64() / 4
			}
			return v
		}
		return bp
	}
	usd, series, solves := mk().Integrate()
	more := make(chan struct{})
	bp := mk()
	bp.Workers, bp.More = 1, more
	go func() { time.Sleep(time.Millisecond); close(more) }()
	usd2, series2, solves2 := bp.Integrate()
	if usd != usd2 || solves != solves2 || !reflect.DeepEqual(series, series2) {
		t.Errorf("workers changed the bound: $%v/%d solves vs $%v/%d solves (series equal %v)", usd, solves, usd2, solves2, reflect.DeepEqual(series, series2))
	}
	bp = mk()
	bp.Workers = 1 // More never closed
	if u, _, n := bp.Integrate(); u != usd || n != solves {
		t.Errorf("one worker: $%v/%d solves, want $%v/%d", u, n, usd, solves)
	}
}
