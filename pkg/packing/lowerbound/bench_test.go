package lowerbound

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkBound solves one LP of the size a busy replay's alive sets
// reach: 30 shapes of 1-4 GPU pods over 40 GPU types of 1-8 GPUs (seeded,
// so every run solves the same LP). Where its CPU goes:
//
//	go test -run '^$' -bench BenchmarkBound -benchtime 3s -cpuprofile /tmp/lb.prof -o /tmp/lb.test ./pkg/packing/lowerbound
//	go tool pprof -top -cum /tmp/lb.test /tmp/lb.prof
func BenchmarkBound(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	var types []Type
	for i := range 40 {
		g := int64(1) << (i % 4)
		types = append(types, Type{Name: fmt.Sprintf("t%d", i), Price: float64(g) * (0.5 + r.Float64()),
			Allocatable: rl(g*int64(4+r.Intn(40)), g*int64(16+r.Intn(200)), g)})
	}
	var shapes []Shape
	for range 30 {
		shapes = append(shapes, Shape{Count: 1 + r.Intn(10), Requests: rl(int64(1+r.Intn(30)), int64(1+r.Intn(100)), int64(1+r.Intn(4)))})
	}
	for b.Loop() {
		if res := Bound(shapes, types, Options{}); res.Method != MethodLP {
			b.Fatalf("method %s (%v), want the LP optimum", res.Method, res.SolverErr)
		}
	}
}
