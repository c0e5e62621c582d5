package lowerbound

import (
	"math"
	"math/rand"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/packingtest"
)

// rl is a shape's requests or a type's allocatable: cpu CPUs, memGi GiB,
// one pod, gpu NVIDIA GPUs.
var rl = packingtest.Resources

func TestBound(t *testing.T) {
	small := Type{Name: "small", Allocatable: rl(4, 16, 1), Price: 1}
	big := Type{Name: "big", Allocatable: rl(32, 128, 8), Price: 6} // cheaper per GPU
	tests := []struct {
		name          string
		shapes        []Shape
		types         []Type
		want          float64
		method        Method
		unschedulable []int
	}{
		{name: "no pods", shapes: nil, types: []Type{small}, want: 0, method: MethodEmpty},
		{name: "zero count", shapes: []Shape{{rl(1, 1, 1), 0}}, types: []Type{small}, want: 0, method: MethodEmpty},
		{name: "no types", shapes: []Shape{{rl(1, 1, 1), 3}}, types: nil, want: 0, method: MethodEmpty, unschedulable: []int{0}},
		{name: "one type, GPU-bound", shapes: []Shape{{rl(1, 1, 1), 3}}, types: []Type{small}, want: 3, method: MethodLP},
		{name: "fluid: 8 GPUs on the cheaper-per-GPU type", shapes: []Shape{{rl(1, 1, 1), 8}}, types: []Type{small, big}, want: 6, method: MethodLP},
		{name: "fluid: fractions allowed", shapes: []Shape{{rl(1, 1, 1), 4}}, types: []Type{small, big}, want: 3, method: MethodLP},
		{name: "CPU-bound shape", shapes: []Shape{{rl(4, 1, 1), 8}}, types: []Type{small, big}, want: 6, method: MethodLP},
		{name: "a shape fits only the big type", shapes: []Shape{{rl(8, 1, 2), 1}, {rl(1, 1, 1), 1}}, types: []Type{small, big}, want: 6.0 * 3 / 8, method: MethodLP},
		{name: "unschedulable shape excluded", shapes: []Shape{{rl(64, 1, 1), 5}, {rl(1, 1, 1), 2}}, types: []Type{small, big}, want: 1.5, method: MethodLP, unschedulable: []int{0}},
		{name: "duplicate types", shapes: []Shape{{rl(1, 1, 1), 2}}, types: []Type{small, small, small}, want: 2, method: MethodLP},
		{name: "zero-price and NaN types ignored", shapes: []Shape{{rl(1, 1, 1), 2}}, types: []Type{{Name: "free", Allocatable: rl(4, 16, 1), Price: 0}, {Name: "nan", Allocatable: rl(4, 16, 1), Price: math.NaN()}, small}, want: 2, method: MethodLP},
		{name: "zero-request shape costs nothing", shapes: []Shape{{corev1.ResourceList{}, 5}, {rl(1, 1, 1), 1}}, types: []Type{small}, want: 1, method: MethodLP},
		{name: "only zero-request shapes", shapes: []Shape{{corev1.ResourceList{}, 5}}, types: []Type{small}, want: 0, method: MethodEmpty},
		{name: "type with zero resources", shapes: []Shape{{rl(1, 1, 1), 1}}, types: []Type{{Name: "empty", Allocatable: corev1.ResourceList{}, Price: 0.01}, small}, want: 1, method: MethodLP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Bound(tt.shapes, tt.types, Options{})
			if math.Abs(got.Cost-tt.want) > 1e-6 || got.Method != tt.method {
				t.Errorf("Bound = %v (%s, %v), want %v (%s)", got.Cost, got.Method, got.SolverErr, tt.want, tt.method)
			}
			if len(got.Unschedulable) != len(tt.unschedulable) {
				t.Errorf("unschedulable %v, want %v", got.Unschedulable, tt.unschedulable)
			}
		})
	}
}

// TestBoundProperties: on random instances the LP bound is at least the
// per-resource fallback bound and at most the cost of a simple feasible
// integral packing (one pod per node on its cheapest type).
func TestBoundProperties(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 30; i++ {
		var types []Type
		for k := 0; k < 3+r.Intn(12); k++ {
			g := []int64{1, 2, 4, 8}[r.Intn(4)]
			types = append(types, Type{Name: string(rune('a' + k)), Allocatable: rl(g*int64(2+r.Intn(12)), g*int64(8+r.Intn(60)), g), Price: float64(g) * (0.5 + 3*r.Float64())})
		}
		var shapes []Shape
		for s := 0; s < 1+r.Intn(15); s++ {
			g := []int64{1, 1, 2, 4, 8}[r.Intn(5)]
			shapes = append(shapes, Shape{rl(g*int64(1+r.Intn(6)), g*int64(2+r.Intn(24)), g), 1 + r.Intn(20)})
		}
		got := Bound(shapes, types, Options{})
		if got.Method != MethodLP {
			t.Errorf("instance %d: method %s (%v)", i, got.Method, got.SolverErr)
		}
		m := build(shapes, types, Options{})
		if got.Cost < m.fallback()*(1-1e-9) {
			t.Errorf("instance %d: LP %v below the fallback %v", i, got.Cost, m.fallback())
		}
		// Upper bound: each schedulable pod alone on its cheapest fitting type.
		upper := 0.0
		unsched := map[int]bool{}
		for _, u := range got.Unschedulable {
			unsched[u] = true
		}
		for s, sh := range shapes {
			if unsched[s] {
				continue
			}
			best := math.Inf(1)
			for _, ty := range types {
				fits := true
				for name, q := range sh.Requests {
					if name == corev1.ResourcePods {
						continue
					}
					a := ty.Allocatable[name]
					if q.Cmp(a) > 0 {
						fits = false
					}
				}
				if fits {
					best = math.Min(best, ty.Price)
				}
			}
			upper += best * float64(sh.Count)
		}
		if got.Cost > upper+1e-6 {
			t.Errorf("instance %d: LP %v above a feasible packing %v", i, got.Cost, upper)
		}
	}
}

func TestBoundCompatible(t *testing.T) {
	small := Type{Name: "small", Allocatable: rl(4, 16, 1), Price: 1}
	big := Type{Name: "big", Allocatable: rl(32, 128, 8), Price: 6}
	// The shape may only use "small" (e.g. a node selector).
	got := Bound([]Shape{{rl(1, 1, 1), 8}}, []Type{small, big}, Options{Compatible: func(_, typ int) bool { return typ == 0 }})
	if math.Abs(got.Cost-8) > 1e-9 {
		t.Errorf("Bound = %v, want 8", got.Cost)
	}
}

func FuzzBound(f *testing.F) {
	f.Add(int64(1), int64(1), int64(1), 3, int64(4), int64(16), int64(1), 1.0)
	f.Add(int64(0), int64(0), int64(0), 0, int64(0), int64(0), int64(0), 0.0)
	f.Add(int64(100), int64(1), int64(9), 1000, int64(4), int64(16), int64(8), -1.0)
	f.Fuzz(func(t *testing.T, cpu, mem, gpu int64, n int, tcpu, tmem, tgpu int64, price float64) {
		clamp := func(v int64) int64 { return max(0, min(v, 1<<20)) }
		shapes := []Shape{{rl(clamp(cpu), clamp(mem), clamp(gpu)), max(0, min(n, 1<<16))}, {rl(1, 1, 1), 2}}
		types := []Type{{Name: "t", Allocatable: rl(clamp(tcpu), clamp(tmem), clamp(tgpu)), Price: price}, {Name: "u", Allocatable: rl(8, 32, 2), Price: 2}}
		got := Bound(shapes, types, Options{})
		if math.IsNaN(got.Cost) || got.Cost < 0 || math.IsInf(got.Cost, 0) {
			t.Fatalf("bad bound %+v", got)
		}
	})
}
