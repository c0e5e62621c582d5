package main

// FinOps inputs and outputs of the simulator: Prometheus (kube-state-
// metrics) as the workload, AWS CLI price files, spot interruptions, cost
// allocation by namespace/label/pod group.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/prices"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type finopsFlags struct {
	prices                 stringList
	discount, spotDiscount float64
	spotRate               float64
	capacityTypes          string
	groupBy                string
	allocationCSV          string
	prometheus             string
	promStart, promEnd     string
	promStep               time.Duration
	nodePools              string // --nodepools (nodepools.go)
}

func addFinOpsFlags(fs *flag.FlagSet, f *finopsFlags) {
	fs.Var(&f.prices, "prices", "price `FILE` (repeatable): the JSON of \"aws ec2 describe-spot-price-history\" (spot prices per zone) or \"aws pricing get-products --service-code AmazonEC2\" (on-demand prices) for --region; on-demand prices it lacks come from the catalog. Spot prices add spot offerings in their zones")
	fs.Float64Var(&f.discount, "discount", 0, "percent off on-demand prices (savings plan, EDP), e.g. 28")
	fs.Float64Var(&f.spotDiscount, "spot-discount", 0, "percent off spot prices (e.g. an EDP that covers spot)")
	fs.Float64Var(&f.spotRate, "spot-interruptions-per-day", 0, "rate at which each spot instance is reclaimed (Poisson; e.g. 0.1 = once per 10 instance-days): a two-minute notice deletes its NodeClaim, its pods are evicted and rescheduled")
	fs.StringVar(&f.capacityTypes, "capacity-types", "", "capacity types the default NodePool may use, e.g. spot,on-demand (default: on-demand); scenario NodePools keep their own requirements")
	fs.StringVar(&f.groupBy, "group-by", "", "pod label to split the cost by (e.g. team), besides namespace and pod group")
	fs.StringVar(&f.allocationCSV, "allocation-csv", "", "write the cost allocation (per policy: by namespace, label, pod group; idle by NodePool) as CSV to this file")
	fs.StringVar(&f.prometheus, "prometheus", "", "read pod lifetimes and requests from kube-state-metrics through this Prometheus server (base URL), over --prometheus-start to --prometheus-end (a saved query_range response is read with --trace)")
	fs.StringVar(&f.promStart, "prometheus-start", "", "start of the Prometheus range (RFC 3339, or a duration before now such as 24h)")
	fs.StringVar(&f.promEnd, "prometheus-end", "", "end of the Prometheus range (RFC 3339, or a duration before now; default now)")
	fs.DurationVar(&f.promStep, "prometheus-step", time.Minute, "step of the Prometheus range queries")
	fs.StringVar(&f.nodePools, "nodepools", "", "the cluster's NodePools (`FILE`: kubectl get nodepools -o json|yaml; kubectl get nodepools,gpunodeclasses adds the GPUNodeClass they use): both policies provision with them instead of the simulator's default NodePool; the karpenter.sh/v1 NodePools of a v1 List given as the input (--cluster, --trace) are read too")
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration before now", s)
}

// loadPrometheus queries a Prometheus server for the workload.
func loadPrometheus(f *finopsFlags, trace string, opts workload.TraceOptions) (*workload.Workload, error) {
	if trace != "" {
		return nil, fmt.Errorf("--prometheus and --trace are two inputs; give one")
	}
	now := time.Now()
	if f.promStart == "" {
		return nil, fmt.Errorf("--prometheus needs --prometheus-start")
	}
	start, err := parseWhen(f.promStart, now)
	if err != nil {
		return nil, fmt.Errorf("--prometheus-start: %w", err)
	}
	end := now
	if f.promEnd != "" {
		if end, err = parseWhen(f.promEnd, now); err != nil {
			return nil, fmt.Errorf("--prometheus-end: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := workload.QueryPrometheus(ctx, f.prometheus, start, end, f.promStep)
	if err != nil {
		return nil, err
	}
	return workload.FromPrometheus(m, f.prometheus, start, end, opts)
}

// applyFinOps sets prices, capacity types, spot interruptions and the
// cost allocation label.
func applyFinOps(f *finopsFlags, cfg *simulation.Config, entries []catalog.Entry, w *workload.Workload) error {
	cfg.GroupBy = f.groupBy
	// kube-state-metrics renames label keys (app.kubernetes.io/name →
	// label_app_kubernetes_io_name): give its pods the --group-by key.
	w.Notes = append(w.Notes, w.MapKSMLabel(f.groupBy)...)
	if f.spotRate < 0 {
		return fmt.Errorf("--spot-interruptions-per-day: negative rate %v", f.spotRate)
	}
	cfg.SpotInterruptionsPerDay = f.spotRate
	if f.discount < 0 || f.discount >= 100 || f.spotDiscount < 0 || f.spotDiscount >= 100 {
		return fmt.Errorf("--discount and --spot-discount are percents in [0, 100)")
	}
	if len(f.prices) > 0 || f.discount > 0 || f.spotDiscount > 0 {
		// Without price files, discounts apply to the catalog's prices.
		t := prices.NewTable()
		if len(f.prices) > 0 {
			var err error
			if t, err = prices.LoadFiles(f.prices...); err != nil {
				return err
			}
		}
		src, err := t.Source(prices.Options{Region: cfg.Region, OnDemandDiscount: f.discount / 100, SpotDiscount: f.spotDiscount / 100, Entries: entries})
		if err != nil {
			return err
		}
		cfg.Prices, cfg.PricesDescription = src.Prices, src.Describe
		cfg.CapacityTypes = src.CapacityTypes
		if len(cfg.Zones) == 0 && len(src.Zones) > 0 {
			cfg.Zones = src.Zones
		}
	}
	if f.capacityTypes != "" {
		var cts []string
		for _, ct := range strings.Split(f.capacityTypes, ",") {
			ct = strings.TrimSpace(ct)
			if ct != karpv1.CapacityTypeOnDemand && ct != karpv1.CapacityTypeSpot {
				return fmt.Errorf("--capacity-types: unknown %q (want on-demand, spot)", ct)
			}
			cts = append(cts, ct)
		}
		for _, ct := range cts {
			if ct == karpv1.CapacityTypeSpot && !contains(cfg.CapacityTypes, ct) {
				return fmt.Errorf("--capacity-types spot needs spot prices: give --prices with `aws ec2 describe-spot-price-history` output for %s", cfg.Region)
			}
		}
		if !setDefaultPoolCapacityTypes(w, cts) {
			return fmt.Errorf("--capacity-types applies to the default NodePool %q; this input's NodePools (%s) state their own karpenter.sh/capacity-type", workload.DefaultNodePool().Name, poolNames(w))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func poolNames(w *workload.Workload) string {
	var names []string
	for _, np := range w.NodePools {
		names = append(names, np.Name)
	}
	return strings.Join(names, ", ")
}

// setDefaultPoolCapacityTypes replaces the capacity-type requirement of the
// default NodePool (inputs without their own NodePools); false when the
// workload has none.
func setDefaultPoolCapacityTypes(w *workload.Workload, cts []string) bool {
	found := false
	for i, np := range w.NodePools {
		if np.Name != workload.DefaultNodePool().Name {
			continue
		}
		found = true
		np = np.DeepCopy()
		reqs := np.Spec.Template.Spec.Requirements
		for j := range reqs {
			if reqs[j].Key == karpv1.CapacityTypeLabelKey {
				reqs[j].Operator, reqs[j].Values = corev1.NodeSelectorOpIn, cts
			}
		}
		w.NodePools[i] = np
	}
	return found
}

// writeFinOpsOutputs writes --allocation-csv.
func writeFinOpsOutputs(f *finopsFlags, results []*report.Result) error {
	if f.allocationCSV == "" {
		return nil
	}
	return writeFile(f.allocationCSV, func(w io.Writer) error { return report.WriteAllocationCSV(w, results...) })
}
