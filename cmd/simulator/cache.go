package main

// The stock reference of a run is cached: a sweep of karpenter-gpu's
// settings (protection, break-even percentage) replays the same stock run
// each time, and the stock replay is the slow one. The key covers everything
// that decides a stock run: the simulator binary itself (its code, Karpenter
// core's, the embedded catalog and trace), the workload as parsed (pods,
// NodePools, node class without its GPU-work protection, which only
// karpenter-gpu's controllers read) and every simulation setting.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// stockKey is the cache key of the stock run of w under cfg.
func stockKey(w *workload.Workload, cfg simulation.Config) (string, error) {
	bin, err := bound.ExecutableDigest()
	if err != nil {
		return "", err
	}
	nc := w.NodeClass.DeepCopy()
	nc.Spec.GPU.Disruption = nil
	settings := struct {
		Seed                                            int64
		LaunchLatency, RegistrationDelay, PodStartDelay string
		BatchIdle, BatchMax, Horizon, Disruption        string
		Catalog                                         any
		Region                                          string
		Zones, CapacityTypes                            []string
		LowerBoundExactShare                            float64
		Eviction                                        any
		SchedulerProfile                                string
		// FinOps: prices (fmt prints maps sorted), interruptions, the
		// allocation's label, the input's span.
		Prices, PricesDescription, GroupBy string
		SpotInterruptionsPerDay            float64
		Span                               string
	}{cfg.Seed, cfg.LaunchLatency.String(), cfg.RegistrationDelay.String(), cfg.PodStartDelay.String(),
		cfg.BatchIdle.String(), cfg.BatchMax.String(), cfg.Horizon.String(), cfg.DisruptionInterval.String(),
		cfg.Catalog, cfg.Region, cfg.Zones, cfg.CapacityTypes, cfg.LowerBoundExactShare, cfg.Eviction, string(cfg.SchedulerProfile),
		fmt.Sprint(cfg.Prices), cfg.PricesDescription, cfg.GroupBy, cfg.SpotInterruptionsPerDay, w.Span.String()}
	h := sha256.New()
	fmt.Fprintf(h, "binary %s\n", bin)
	enc := json.NewEncoder(h)
	for _, v := range []any{w.Pods, w.NodePools, nc, w.Excluded, w.Window, w.GPUMap, w.CPUPods, settings} {
		if err := enc.Encode(v); err != nil {
			return "", fmt.Errorf("hashing the stock run's inputs, %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cacheDir is where stock results are kept.
func cacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "karpenter-gpu", "simulator", "stock"), nil
}

// loadStock returns the cached stock result for key, if any.
func loadStock(key string) (*report.Result, bool) {
	d, err := cacheDir()
	if err != nil {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(d, key+".json"))
	if err != nil {
		return nil, false
	}
	r := &report.Result{}
	if err := json.Unmarshal(b, r); err != nil || r.Policy != string(simulation.PolicyStock) || r.Series == nil {
		return nil, false
	}
	return r, true
}

// storeStock caches a stock result (atomically: a concurrent reader sees
// the whole file or none).
func storeStock(key string, r *report.Result) error {
	d, err := cacheDir()
	if err != nil {
		return err
	}
	return bound.StoreJSON(d, key, r)
}
