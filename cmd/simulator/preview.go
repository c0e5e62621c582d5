package main

// simulator preview: the cost of a manifest before it is deployed. The
// cluster's pods (a kubectl pod list, manifests or a scenario) are
// provisioned as a snapshot; once the fleet has settled the manifest's pods
// arrive; the preview is the fleet's $/h and GPUs after they are placed
// minus before, under karpenter-gpu and under stock Karpenter, with the
// instances that launch (or "fits on free capacity").

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// PreviewResult is one policy's preview (--json: a list of them).
type PreviewResult struct {
	Policy string `json:"policy"`
	// Baseline is what "before" is: "cluster nodes" (the cluster's actual
	// nodes, --nodes or Nodes in --cluster) or "simulated fleet" (the
	// fleet the policy builds for the cluster's pods).
	Baseline string `json:"baseline"`
	// BeforeUSDPerHour is the settled fleet's $/h just before the manifest
	// arrives; AfterUSDPerHour at the end (the added pods placed and the
	// fleet settled again).
	BeforeUSDPerHour      float64 `json:"before_usd_per_hour"`
	AfterUSDPerHour       float64 `json:"after_usd_per_hour"`
	IncrementalUSDPerHour float64 `json:"incremental_usd_per_hour"`
	GPUsBefore            float64 `json:"gpus_before"`
	GPUsAfter             float64 `json:"gpus_after"`
	// Launched are the instances launched after the manifest arrived and
	// still running at the end; Terminated those running before it and not
	// at the end (consolidation replaced them).
	Launched   []report.InstanceRun `json:"launched"`
	Terminated []report.InstanceRun `json:"terminated"`
	// FitsOnFreeCapacity: nothing launched, every added pod ran.
	FitsOnFreeCapacity bool `json:"fits_on_free_capacity"`
	AddedPods          int  `json:"added_pods"`
	// AddedPodsPending never ran by the end (unschedulable or still
	// waiting), with Karpenter's reason when it has one.
	AddedPodsPending []report.UnschedulablePod `json:"added_pods_pending,omitempty"`
	// OnClusterNodes are the added pods placed on the cluster's nodes' free
	// capacity, ClusterNodes those nodes as priced (baseline "cluster
	// nodes" only).
	OnClusterNodes []NodePlacement    `json:"on_cluster_nodes,omitempty"`
	ClusterNodes   []ClusterNodePrice `json:"cluster_nodes,omitempty"`
	// With --consolidate (baseline "cluster nodes, Karpenter's
	// consolidated"): the nodes' $/h as they are, and what the policy did
	// to the Karpenter nodes before the manifest arrived (before is then
	// after that consolidation).
	ClusterNodesUSDPerHour float64        `json:"cluster_nodes_usd_per_hour,omitempty"`
	Consolidation          *Consolidation `json:"consolidation,omitempty"`
	Result                 *report.Result `json:"-"`
	added                  map[string]bool
}

func runPreview(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulator preview", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cluster, nodesFile, jsonOut, region, catalogPath, profile string
	var add stringList
	var at, settle time.Duration
	consolidate := true
	var seed int64
	fin := &finopsFlags{}
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: simulator preview --cluster PODS [--nodepools NODEPOOLS] [--nodes NODES] --add MANIFEST [flags]
       simulator preview --prometheus URL --prometheus-start T --add MANIFEST [flags]

Prints what adding a manifest's pods to a cluster would cost per hour, under
karpenter-gpu and under stock Karpenter.

Both policies provision with the cluster's NodePools when given
(--nodepools: kubectl get nodepools -o json|yaml, or kubectl get
nodepools,gpunodeclasses for the GPUNodeClass too; or the karpenter.sh/v1
NodePools of a v1 List given as --cluster): their requirements (instance
families, capacity types, zones, Karpenter-AWS's karpenter.k8s.aws labels
too), limits, taints, weights and disruption settings. Without them, the
simulator's default NodePool "gpu": NVIDIA GPU types on amd64, on-demand,
no limits. A NodePool no priced instance type of the catalog satisfies (in
--region, with the capacity types and zones of --prices) is an error that
names it; spot-only NodePools need spot prices (--prices).

With the cluster's nodes (--nodes: kubectl get nodes -o json|yaml; or the
Nodes of a v1 List given as --cluster, e.g. kubectl get nodes,pods -A -o
json): the manifest's pods are placed by kube-scheduler's rules on the free
capacity the nodes have left after the pods bound to them, and each policy
launches for the pods that fit nowhere; before is the nodes' $/h. With
--consolidate (the default), the nodes a Karpenter NodePool owns
(karpenter.sh/nodepool) whose type the catalog prices are not kept as they
are: they start each policy's simulated fleet with the pods bound to them,
each policy may consolidate them before the manifest arrives (--at) and
after, and before is that consolidated fleet (plus the other nodes), so the
increment is the manifest's own; the nodes as they are are listed too. The
manifest's pods take the other nodes' free capacity first; a Karpenter node
the simulated NodePool cannot launch (another capacity type or GPU maker)
is kept as it is, with a note (with the cluster's NodePools: those of the
NodePool most of the Karpenter nodes belong to are started in it, the
others kept as they are).

Without nodes: the cluster's pods (kubectl get pods -A -o json|yaml,
manifests or a scenario) are provisioned as a snapshot, the manifest's pods
(Deployment, StatefulSet, Job, JobSet, Pods) arrive once the fleet has
settled, and each policy's fleet after is compared with its fleet before.
With --prometheus instead of --cluster, the cluster's pods are those
kube-state-metrics shows alive at the end of the range (--prometheus-end,
default now); its series do not say which node a pod runs on, so --nodes
needs a kubectl pod list.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cluster, "cluster", "", "the cluster's pods: a kubectl pod list (JSON or YAML), manifests or a scenario (required unless --prometheus)")
	fs.Var(&add, "add", "manifest whose pods are added (repeatable; required)")
	fs.StringVar(&nodesFile, "nodes", "", "the cluster's nodes (kubectl get nodes -o json|yaml): place the added pods on their free capacity first")
	fs.BoolVar(&consolidate, "consolidate", true, "with nodes: start each policy's fleet from the cluster's Karpenter nodes and let it consolidate them (false: keep every node as it is)")
	fs.DurationVar(&at, "at", 30*time.Minute, "when the manifest arrives: the cluster's simulated fleet (without nodes) or its Karpenter nodes (--nodes --consolidate) settle before (unused with --nodes --consolidate=false)")
	fs.DurationVar(&settle, "settle", 30*time.Minute, "how long after the manifest arrives the fleet is compared (with nodes: how long the pods that fit on none are provisioned for)")
	fs.StringVar(&jsonOut, "json", "", "write the preview as JSON to this file")
	fs.StringVar(&region, "region", simulation.DefaultConfig().Region, "region whose prices are used")
	fs.StringVar(&catalogPath, "catalog", "", "instance catalog CSV replacing the embedded AWS catalog")
	fs.StringVar(&profile, "scheduler-profile", string(kubescheduler.ProfileBinPacking), "kube-scheduler profile (default, bin-packing)")
	fs.Int64Var(&seed, "seed", 1, "seed of the fake fleet")
	addFinOpsFlags(fs, fin)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("preview: unexpected arguments %q", fs.Args())
	}
	if cluster != "" && fin.prometheus != "" {
		return fmt.Errorf("preview: --cluster and --prometheus are two inputs for the cluster's pods; give one")
	}
	if (cluster == "" && fin.prometheus == "") || len(add) == 0 {
		return fmt.Errorf("preview: --cluster (or --prometheus) and --add are required")
	}
	if fin.prometheus != "" && nodesFile != "" {
		return fmt.Errorf("preview: --nodes needs a kubectl pod list as --cluster (spec.nodeName says which pods run on which node); the kube-state-metrics series read from --prometheus do not")
	}
	if at <= 0 || settle <= 0 {
		return fmt.Errorf("preview: --at and --settle must be positive")
	}
	entries, _, err := catalog.Embedded()
	if err != nil {
		return err
	}
	cfg := simulation.DefaultConfig()
	cfg.Seed, cfg.Region = seed, region
	if catalogPath != "" {
		if entries, _, err = catalog.LoadFile(catalogPath); err != nil {
			return err
		}
		cfg.Catalog = entries
	}
	if cfg.SchedulerProfile, err = kubescheduler.ParseProfile(profile); err != nil {
		return fmt.Errorf("--scheduler-profile: %w", err)
	}
	opts := workload.TraceOptions{GPUMap: workload.DefaultGPUMap()}
	clusterFile := cluster
	var base *workload.Workload
	if fin.prometheus != "" {
		if base, err = loadPrometheus(fin, "", opts); err == nil {
			cluster = base.Source // URL (kube-state-metrics, start to end): its pods alive at the end
		}
	} else {
		base, err = workload.LoadInput(cluster, opts)
	}
	if err != nil {
		return err
	}
	w, added, err := previewWorkload(base, cluster, add, at, opts)
	if err != nil {
		return err
	}
	pools, err := useClusterPools(w, clusterFile, fin)
	if err != nil {
		return err
	}
	if err := applyFinOps(fin, &cfg, entries, w); err != nil {
		return err
	}
	if err := checkClusterPools(pools, w, cfg); err != nil {
		return err
	}
	var nodes *workload.ClusterNodes
	if fin.prometheus == "" {
		if nodes, err = workload.LoadClusterNodes(cluster, nodesFile); err != nil {
			return err
		}
	}
	if nodes != nil {
		w.Notes = lo.Filter(w.Notes, func(n string, _ int) bool { return !strings.Contains(n, workload.NodesNotReplayed) })
		if consolidate {
			out, np, keep, err := runPreviewConsolidating(w, added, nodes, cfg, entries, at, settle, pools.initialNodePool(w, nodes))
			if err != nil {
				return err
			}
			if out != nil {
				if err := writePreviewConsolidated(stdout, w, cluster, nodesFile, add, at, settle, nodes, np, keep, out); err != nil {
					return err
				}
				if jsonOut != "" {
					return writeFile(jsonOut, func(wr io.Writer) error { return report.WriteJSON(wr, out) })
				}
				return nil
			}
			for _, name := range slices.Sorted(maps.Keys(keep)) {
				w.Notes = append(w.Notes, fmt.Sprintf("Karpenter node %s kept as it is: %s", name, keep[name]))
			}
		}
		out, np, err := runPreviewOnNodes(w, added, nodes, cfg, entries, settle)
		if err != nil {
			return err
		}
		if err := writePreviewOnNodes(stdout, w, cluster, nodesFile, add, settle, nodes, np, out); err != nil {
			return err
		}
		if jsonOut != "" {
			return writeFile(jsonOut, func(wr io.Writer) error { return report.WriteJSON(wr, out) })
		}
		return nil
	}
	cfg.Horizon = at + settle
	l := logr.Discard()
	cfg.Logger = &l
	out := make([]*PreviewResult, len(previewPolicies))
	cfg.LowerBound = bound.NewCache()
	errs := simulatePreviewPolicies(w, cfg, func(i int, r *report.Result) { out[i] = preview(r, at, added) })
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("simulating %s: %w", previewPolicies[i], err)
		}
	}
	if err := writePreview(stdout, w, cluster, add, at, settle, out); err != nil {
		return err
	}
	if jsonOut != "" {
		return writeFile(jsonOut, func(wr io.Writer) error { return report.WriteJSON(wr, out) })
	}
	return nil
}

// previewWorkload is the cluster's pods (w, read from cluster) at t=0 (a
// snapshot) plus the manifests' pods arriving at `at`, none leaving; added
// lists the keys of the added pods.
func previewWorkload(w *workload.Workload, cluster string, add []string, at time.Duration, opts workload.TraceOptions) (*workload.Workload, map[string]bool, error) {
	// The cluster as it is: its pods at the end of a Prometheus range,
	// every pod of a pod list or manifests (they all arrive at 0).
	snap := time.Duration(0)
	if w.Span > 0 {
		snap = w.Span - time.Second
	}
	w = w.Snapshot(snap)
	w.Source = cluster
	keys := map[string]string{}
	for _, p := range w.Pods {
		keys[p.Key()] = p.Origin
	}
	added := map[string]bool{}
	for _, path := range add {
		m, err := workload.LoadInput(path, opts)
		if err != nil {
			return nil, nil, err
		}
		if len(m.Pods) == 0 {
			return nil, nil, fmt.Errorf("%s: no pod to add", path)
		}
		for _, p := range m.Pods {
			if prev, dup := keys[p.Key()]; dup {
				return nil, nil, fmt.Errorf("%s: pod %s is already in the cluster (%s)", p.Origin, p.Key(), prev)
			}
			keys[p.Key()] = p.Origin
			p.Arrival, p.Deletion = at, workload.Forever
			w.Pods = append(w.Pods, p)
			added[p.Key()] = true
		}
		w.Notes = append(w.Notes, m.Notes...)
	}
	w.SortPods()
	return w, added, nil
}

// preview reads one policy's result: the fleet before `at` and at the end.
// previewPolicies are the policies a preview compares, in its order.
var previewPolicies = []simulation.Policy{simulation.PolicyKarpenterGPU, simulation.PolicyStock}

// simulatePreviewPolicies simulates w under cfg once per policy of
// previewPolicies, in parallel, and hands the i-th policy's result to use
// (on that run's goroutine). It returns the runs' errors, one per policy,
// nil where the run succeeded (use is not called for a failed run).
func simulatePreviewPolicies(w *workload.Workload, cfg simulation.Config, use func(i int, r *report.Result)) []error {
	errs := make([]error, len(previewPolicies))
	var wg sync.WaitGroup
	for i, p := range previewPolicies {
		c := cfg
		c.Policy = p
		wg.Go(func() {
			r, err := simulation.Run(context.Background(), w, c)
			if err != nil {
				errs[i] = err
				return
			}
			use(i, r)
		})
	}
	wg.Wait()
	return errs
}

func preview(r *report.Result, at time.Duration, added map[string]bool) *PreviewResult {
	atH := at.Hours()
	p := &PreviewResult{Policy: r.Policy, Baseline: baselineFleet, AfterUSDPerHour: r.FinalFleetUSDPerHr, AddedPods: len(added), Result: r}
	for _, in := range r.Instances {
		runningBefore := in.StartHours < atH && in.EndHours >= atH
		if runningBefore {
			p.BeforeUSDPerHour += in.USDPerHour
			p.GPUsBefore += float64(in.GPUs)
		}
		if in.Running {
			p.GPUsAfter += float64(in.GPUs)
		}
		switch {
		case in.StartHours >= atH && in.Running:
			p.Launched = append(p.Launched, in)
		case runningBefore && !in.Running:
			p.Terminated = append(p.Terminated, in)
		}
	}
	p.IncrementalUSDPerHour = p.AfterUSDPerHour - p.BeforeUSDPerHour
	if math.Abs(p.IncrementalUSDPerHour) < 1e-9 {
		p.IncrementalUSDPerHour = 0
	}
	p.added = added
	for _, u := range r.UnschedulablePods {
		if p.isAdded(u) {
			p.AddedPodsPending = append(p.AddedPodsPending, u)
		}
	}
	p.FitsOnFreeCapacity = len(p.Launched) == 0 && len(p.AddedPodsPending) == 0 && r.PodsNeverStarted == 0
	return p
}

// isAdded reports whether an unschedulable pod is one of the added pods.
func (p *PreviewResult) isAdded(u report.UnschedulablePod) bool {
	return p.added[u.Name] || p.added["default/"+u.Name] || matchesKey(p.added, u.Name)
}

func matchesKey(keys map[string]bool, name string) bool {
	for k := range keys {
		if strings.HasSuffix(k, "/"+name) {
			return true
		}
	}
	return false
}

func writePreview(w io.Writer, wl *workload.Workload, cluster string, add []string, at, settle time.Duration, out []*PreviewResult) error {
	addedGPUs := int64(0)
	addedPods := 0
	for _, p := range wl.Pods {
		if p.Arrival == at {
			addedGPUs += p.GPUs()
			addedPods++
		}
	}
	fmt.Fprintf(w, "preview: adding %s (%s, %d GPUs requested) to %s (%s); fleet compared %s after they arrive\n\n",
		strings.Join(add, ", "), plural(addedPods, "pod"), addedGPUs, cluster, plural(len(wl.Pods)-addedPods, "pod"), settle)
	if err := writePolicyTable(w, out); err != nil {
		return err
	}
	for _, p := range out {
		fmt.Fprintln(w)
		writeOutcome(w, p, "", "fits on existing free capacity")
	}
	if len(out) > 0 && out[0].Result.Prices != "" {
		fmt.Fprintf(w, "\nPrices: %s\n", out[0].Result.Prices)
	}
	for _, n := range wl.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	return nil
}

// writePolicyTable writes each policy's fleet price and GPUs before and
// after the added pods, one row a policy.
func writePolicyTable(w io.Writer, out []*PreviewResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tbefore $/h\tafter $/h\tincremental $/h\tGPUs before\tGPUs after\t+GPUs\t")
	for _, p := range out {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%+.3f\t%.0f\t%.0f\t%+.0f\t\n", p.Policy, p.BeforeUSDPerHour, p.AfterUSDPerHour, p.IncrementalUSDPerHour, p.GPUsBefore, p.GPUsAfter, p.GPUsAfter-p.GPUsBefore)
	}
	return tw.Flush()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// describeInstances: "2 × g5.12xlarge (on-demand, $5.672/h), ...".
func describeInstances(ins []report.InstanceRun) string {
	type k struct {
		typ, ct string
		price   float64
	}
	count := map[k]int{}
	for _, in := range ins {
		count[k{in.Type, in.CapacityType, in.USDPerHour}]++
	}
	keys := make([]k, 0, len(count))
	for key := range count {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].typ != keys[j].typ {
			return keys[i].typ < keys[j].typ
		}
		return keys[i].ct < keys[j].ct
	})
	parts := make([]string, 0, len(keys))
	for _, key := range keys {
		parts = append(parts, fmt.Sprintf("%d × %s (%s, $%.3f/h)", count[key], key.typ, key.ct, key.price))
	}
	return strings.Join(parts, ", ")
}

// writeOutcome prints what adding the manifest does under one policy: it
// fits (fits, the sentence), or what it launches (after subject) and
// retires, and which of its pods do not run.
func writeOutcome(w io.Writer, p *PreviewResult, subject, fits string) {
	fmt.Fprintf(w, "%s: ", p.Policy)
	switch {
	case p.FitsOnFreeCapacity:
		fmt.Fprintln(w, fits+" (no instance launched)")
	case len(p.Launched) > 0:
		fmt.Fprintf(w, "%slaunches %s\n", subject, describeInstances(p.Launched))
	default:
		fmt.Fprintf(w, "%slaunches nothing\n", subject)
	}
	if len(p.Terminated) > 0 {
		fmt.Fprintf(w, "  and retires %s\n", describeInstances(p.Terminated))
	}
	for _, u := range p.AddedPodsPending {
		fmt.Fprintf(w, "  pod %s does not run: %s\n", u.Name, u.Reason)
	}
	if n := p.Result.PodsNeverStarted; n > 0 {
		fmt.Fprintf(w, "  %d pods had not started by the end (raise --settle)\n", n)
	}
}
