package simulation

import (
	"context"
	"sync"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// benchCompare runs both policies concurrently on w, as `simulator
// --compare` does, and reports the cost ratio.
func benchCompare(b *testing.B, w *workload.Workload, mutate func(*Config)) {
	for i := 0; i < b.N; i++ {
		lb := bound.NewCache()
		var wg sync.WaitGroup
		results := make([]*report.Result, 2)
		errs := make([]error, 2)
		for j, p := range []Policy{PolicyKarpenterGPU, PolicyStock} {
			cfg := DefaultConfig()
			cfg.Policy, cfg.LowerBound = p, lb
			if mutate != nil {
				mutate(&cfg)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[j], errs[j] = Run(context.Background(), w, cfg)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		c := report.Compare(results[0], results[1])
		b.ReportMetric(c.Ratios["cost_usd"], "cost-ratio")
		b.ReportMetric(results[0].CostOverLowerBound, "gpu-cost/lb")
		b.ReportMetric(results[1].CostOverLowerBound, "stock-cost/lb")
	}
}

// BenchmarkSnapshotBusiestCompare: the busiest moment of the default trace
// (53 GPU pods) provisioned in one batch, both policies, one hour.
func BenchmarkSnapshotBusiestCompare(b *testing.B) {
	full, err := workload.DefaultInput(workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	if err != nil {
		b.Fatal(err)
	}
	w := full.Snapshot(full.Busiest())
	benchCompare(b, w, func(c *Config) { c.Horizon = c.Horizon + 3600e9 })
}

// BenchmarkFullTraceCompare replays the whole default trace (8,152 pods,
// 149 days) under both policies, as `go run ./cmd/simulator --compare`
// does. It takes tens of minutes; run it alone:
//
//	go test ./pkg/simulation -run '^$' -bench FullTraceCompare -benchtime 1x -timeout 3h
func BenchmarkFullTraceCompare(b *testing.B) {
	w, err := workload.DefaultInput(workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	if err != nil {
		b.Fatal(err)
	}
	benchCompare(b, w, nil)
}
