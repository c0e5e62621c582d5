// Command simulator replays a GPU workload through karpenter-gpu's and
// Karpenter core's real provisioning and disruption code, offline, and
// reports what the fleet would cost. See pkg/simulation.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"golang.org/x/term"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "simulator:", err)
		os.Exit(1)
	}
}

type flags struct {
	trace, catalog, gpuMap, policy, jsonOut, htmlOut, cpuProfile, region, zones, cpuPods              string
	ignoreGPUModel, compare, quiet, verbose, progressLines, lowerBoundOnly                            bool
	snapshot, start, qosClasses, checkpoint                                                           string
	serviceRestart                                                                                    time.Duration
	repeat                                                                                            evictioncost.Repeat
	protection, consolidationPolicy, csvOut                                                           string
	noCache                                                                                           bool
	breakEvenPercent                                                                                  int
	attrition, repack, evictionCostPerPod                                                             string
	seed                                                                                              int64
	launchLatency, registrationDelay, podStartDelay, batchIdle, batchMax, horizon, disruptionInterval time.Duration
	lbExact                                                                                           float64

	schedulerProfile string // --scheduler-profile
	nominatePods     bool   // --nominate-pods

	fin finopsFlags // finops.go
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	def := simulation.DefaultConfig()
	f := &flags{}
	fs := flag.NewFlagSet("simulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: simulator [flags]
       simulator preview --cluster PODS --add MANIFEST [flags]   (see simulator preview --help)

Replays a GPU workload through karpenter-gpu's and Karpenter core's real
provisioning, NodeClaim lifecycle, consolidation and termination code over a
fake clock, an in-memory API server and the fake fleet, and reports the fleet's
cost against the fluid LP lower bound. With no flags it replays the bundled
Alibaba v2023 trace (openb_pod_list_default, 8,152 pods over 149 days) against
the embedded AWS GPU catalog (us-east-1, on-demand) under the karpenter-gpu
policy.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.trace, "trace", "", "input: an Alibaba v2023 pod-list CSV (with or without creation/deletion times), or a YAML scenario (.yaml/.yml: NodePools, GPUNodeClass, pod groups or a trace); default: the bundled openb_pod_list_default.csv")
	fs.StringVar(&f.catalog, "catalog", "", "instance catalog CSV replacing the embedded AWS catalog (same columns as pkg/catalog/data/aws-accelerated-instances.csv)")
	fs.StringVar(&f.gpuMap, "gpu-map", "", "YAML file mapping trace GPU models (gpu_spec) to catalog GPUs, e.g. \"T4: {gpuNames: [t4]}\"; default: T4→t4, V100M16→v100, V100M32→v100 with >=32GiB, P100→v100, A10→a10g, G1/G2/G3→any GPU")
	fs.BoolVar(&f.ignoreGPUModel, "ignore-gpu-model", false, "drop the trace's GPU model constraints (any GPU may run any GPU pod)")
	fs.StringVar(&f.cpuPods, "cpu-pods", string(workload.CPUPodsExclude), "what a trace replay does with pods that request no GPU: exclude (left out and counted: the GPU catalog has no CPU capacity and karpenter-gpu keeps CPU pods off GPU nodes), gpu-nodes (they tolerate the GPU taint and run on GPU nodes, as in the trace's all-GPU cluster), as-is (unschedulable unless a scenario NodePool offers CPU capacity)")
	fs.StringVar(&f.snapshot, "snapshot", "", "provision every pod alive at this trace time (seconds, e.g. 10281600, a duration such as 2856h, or \"busiest\" for the moment with the most GPU pods alive) in one batch at t=0; pods never leave; default duration 1h (static comparison)")
	fs.Int64Var(&f.seed, "seed", def.Seed, "seed of the fake fleet; the same seed and input give the same report")
	fs.StringVar(&f.policy, "policy", string(def.Policy), "whose decisions run: karpenter-gpu (core's scheduler refined by the GPU packer, plus karpenter-gpu's controllers) or stock (Karpenter core alone)")
	fs.BoolVar(&f.compare, "compare", false, "run both policies on the same input and print the ratios (karpenter-gpu ÷ stock)")
	fs.StringVar(&f.jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&f.htmlOut, "html", "", "write an HTML report with SVG charts (fleet cost and GPUs paid vs requested over time, per policy) to this file")
	fs.DurationVar(&f.launchLatency, "launch-latency", def.LaunchLatency, "time an instance stays pending after launch")
	fs.DurationVar(&f.registrationDelay, "registration-delay", def.RegistrationDelay, "time from an instance running to its node registering (boot, kubelet, GPU driver and device plugin)")
	fs.DurationVar(&f.podStartDelay, "pod-start-delay", def.PodStartDelay, "time from a pod being bound to running (image pull)")
	fs.DurationVar(&f.batchIdle, "batch-idle-duration", def.BatchIdle, "Karpenter's --batch-idle-duration")
	fs.DurationVar(&f.batchMax, "batch-max-duration", def.BatchMax, "Karpenter's --batch-max-duration")
	fs.BoolVar(&f.lowerBoundOnly, "lower-bound-only", false, "print only the workload's fluid LP lower bound (its cost floor over the catalog and NodePools) without replaying it")
	fs.Float64Var(&f.lbExact, "lower-bound-exact", simulation.DefaultLowerBoundExactShare, "share of simulated time (longest-lived alive sets first) whose fluid LP lower bound is solved exactly; the other moments get solve-free bounds from their solved neighbours, still valid but looser (1 solves every moment; slow on long traces)")
	fs.DurationVar(&f.disruptionInterval, "disruption-interval", 0, "APPROXIMATION for fast sweeps: after a disruption poll that found nothing, wait at least this long (instead of Karpenter's 10s) before evaluating consolidation again; 0 keeps Karpenter's cadence. Karpenter's consolidation simulations dominate replay time (see the report's profile)")
	fs.DurationVar(&f.horizon, "duration", 0, "simulated duration (with --start: the window's length); pods arriving after it are not replayed nor counted; default: the input's last arrival or deletion plus 1h (for the fleet to drain or settle)")
	fs.StringVar(&f.start, "start", "", "replay the window of the input that starts at this trace time (seconds or a duration such as 2784h) and lasts --duration: pods alive at the start arrive at t=0, later ones at their times; only they are counted")
	fs.StringVar(&f.qosClasses, "qos-classes", "", "eviction model: workload class of the trace's qos values, e.g. \"BE=batch,LS=service\" (default: BE and empty → batch; LS, Guaranteed, Burstable → service)")
	fs.StringVar(&f.checkpoint, "checkpoint-interval", def.Eviction.CheckpointInterval.String(), "eviction model: how often batch pods checkpoint (a duration, or never: an evicted batch pod restarts from zero); scenario pod groups may set their own")
	fs.StringVar(&f.csvOut, "csv", "", "write every policy's time series (fleet $/h, GPUs paid, allocated, requested, lower bound $/h) as CSV to this file")
	fs.BoolVar(&f.noCache, "no-cache", false, "always replay stock Karpenter (by default a stock result is reused from the user's cache directory when everything that decides it is unchanged: binary, input, settings)")
	fs.StringVar(&f.protection, "protection", "", "override the GPUNodeClass's gpu.disruption.protection for this run: BreakEven, Always (the old protectRunningGPUPods: true) or Never (karpenter-gpu policy; stock has no GPU-work protection)")
	fs.StringVar(&f.attrition, "drain-by-attrition", "", "override the GPUNodeClass's gpu.disruption.drainByAttrition (true or false): soft-cordon nodes the break-even rule finds reclaimable")
	fs.StringVar(&f.evictionCostPerPod, "eviction-cost-per-pod", "", "override the GPUNodeClass's gpu.disruption.evictionCostPerPod (dollars added to every GPU pod's eviction-cost estimate; default 0.3, 0 turns it off)")
	fs.StringVar(&f.repack, "repack", "", "override the GPUNodeClass's gpu.disruption.repack (true or false): split nodes released by the break-even rule into the packer's cheaper set of new nodes")
	fs.IntVar(&f.breakEvenPercent, "break-even-percent", -1, "override the GPUNodeClass's gpu.disruption.breakEvenPercent (100 = release a node once it has wasted what evicting its GPU pods costs)")
	fs.StringVar(&f.consolidationPolicy, "consolidation-policy", "", "override every NodePool's spec.disruption.consolidationPolicy: WhenEmptyOrUnderutilized, Balanced or WhenEmpty (both policies)")
	fs.DurationVar(&f.repeat.Window, "repeat-eviction-window", def.Eviction.Repeat.Window, "karpenter-gpu policy (the controller's --repeat-eviction-window): how long a workload whose pod was displaced by a voluntary disruption is remembered; 0 turns the rule off")
	fs.Float64Var(&f.repeat.Multiplier, "repeat-eviction-multiplier", def.Eviction.Repeat.Multiplier, "karpenter-gpu policy (the controller's --repeat-eviction-multiplier): the eviction-cost estimate of a remembered workload's pods is multiplied by this (at most 1: off)")
	fs.DurationVar(&f.serviceRestart, "service-restart", def.Eviction.RestartTime, "eviction model: extra start time of an evicted service replica's replacement (reloading its model) before it serves")
	fs.BoolVar(&f.nominatePods, "nominate-pods", true, "karpenter-gpu sets each pending pod's status.nominatedNodeName to the node launched for it (the controller's --nominate-pods; kube-scheduler v1.35+ then binds it there and holds its share); false: pods land where kube-scheduler's scores put them, as with stock Karpenter")
	fs.StringVar(&f.schedulerProfile, "scheduler-profile", string(kubescheduler.ProfileDefault), "kube-scheduler profile the simulated kube-scheduler scores nodes with: default (kube-scheduler's default profile: NodeResourcesFit LeastAllocated, spreads pods) or bin-packing (NodeResourcesFit MostAllocated, nvidia.com/gpu weighted highest: the recommended GPU profile, see designs/scheduler-profile.md)")
	fs.StringVar(&f.region, "region", def.Region, "region of the fake fleet; the embedded catalog holds us-east-1 on-demand prices only: for another region (or spot) give --prices; a region without any price is an error")
	fs.StringVar(&f.zones, "zones", "", "comma-separated zones of the fake fleet (default: <region>a,b,c)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar on stderr")
	fs.BoolVar(&f.progressLines, "progress-lines", false, "print progress as lines on stderr even when it is not a terminal (for logs)")
	fs.BoolVar(&f.verbose, "verbose", false, "log controller activity to stderr (slow)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	addFinOpsFlags(fs, &f.fin)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (the input is given with --trace)", fs.Args())
	}
	return f, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	// The simulation allocates heavily (core deep-copies cluster state for
	// every scheduling simulation) but keeps little alive: trade memory for
	// less garbage collection.
	debug.SetGCPercent(400)
	if len(args) > 0 && args[0] == "preview" {
		return runPreview(args[1:], stdout, stderr)
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := simulation.DefaultConfig()
	if cfg.Policy, err = simulation.ParsePolicy(f.policy); err != nil {
		return err
	}
	cfg.Seed, cfg.LaunchLatency, cfg.RegistrationDelay, cfg.PodStartDelay = f.seed, f.launchLatency, f.registrationDelay, f.podStartDelay
	cfg.BatchIdle, cfg.BatchMax, cfg.Horizon, cfg.Region = f.batchIdle, f.batchMax, f.horizon, f.region
	if f.lbExact <= 0 || f.lbExact > 1 {
		return fmt.Errorf("--lower-bound-exact: %v is not in (0, 1]", f.lbExact)
	}
	cfg.LowerBoundExactShare = f.lbExact
	if f.disruptionInterval < 0 {
		return fmt.Errorf("--disruption-interval: negative duration %s", f.disruptionInterval)
	}
	cfg.DisruptionInterval = f.disruptionInterval
	if cfg.SchedulerProfile, err = kubescheduler.ParseProfile(f.schedulerProfile); err != nil {
		return fmt.Errorf("--scheduler-profile: %w", err)
	}
	cfg.NoNomination = !f.nominatePods
	if f.zones != "" {
		cfg.Zones = strings.Split(f.zones, ",")
	}
	// Everything is read and validated before anything is simulated.
	entries, _, err := catalog.Embedded()
	if err != nil {
		return err
	}
	if f.catalog != "" {
		if entries, _, err = catalog.LoadFile(f.catalog); err != nil {
			return err
		}
		cfg.Catalog = entries
	}
	gpuMap, mapSource := workload.DefaultGPUMap(), "default GPU map"
	if f.gpuMap != "" {
		if gpuMap, err = workload.LoadGPUMap(f.gpuMap); err != nil {
			return err
		}
		mapSource = f.gpuMap
	}
	if err := gpuMap.Validate(entries, mapSource); err != nil {
		return err
	}
	if f.ignoreGPUModel {
		gpuMap = nil
	}
	cpuPods, err := workload.ParseCPUPods(f.cpuPods)
	if err != nil {
		return err
	}
	qos, err := workload.ParseQoSClasses(f.qosClasses)
	if err != nil {
		return err
	}
	if cfg.Eviction.CheckpointInterval, err = evictioncost.ParseCheckpointInterval(f.checkpoint); err != nil {
		return fmt.Errorf("--checkpoint-interval: %w", err)
	}
	if f.serviceRestart < 0 {
		return fmt.Errorf("--service-restart: negative duration %s", f.serviceRestart)
	}
	cfg.Eviction.RestartTime = f.serviceRestart
	if err := f.repeat.Validate(); err != nil {
		return fmt.Errorf("--repeat-eviction-window/--repeat-eviction-multiplier: %w", err)
	}
	cfg.Eviction.Repeat = f.repeat
	opts := workload.TraceOptions{GPUMap: gpuMap, CPUPods: cpuPods, QoSClasses: qos}
	var w *workload.Workload
	if f.fin.prometheus != "" {
		w, err = loadPrometheus(&f.fin, f.trace, opts)
	} else if f.trace == "" {
		w, err = workload.DefaultInput(opts)
	} else {
		w, err = workload.LoadInput(f.trace, opts)
	}
	if err != nil {
		return err
	}
	if f.start != "" || (f.horizon > 0 && f.snapshot == "") {
		var start time.Duration
		if f.start != "" {
			if start, err = parseTraceTime(f.start); err != nil {
				return fmt.Errorf("--start: %w", err)
			}
			if f.horizon == 0 {
				return fmt.Errorf("--start needs --duration (the window's length)")
			}
		}
		if w, err = w.Slice(start, f.horizon); err != nil {
			return err
		}
	}
	pools, err := useClusterPools(w, f.trace, &f.fin)
	if err != nil {
		return err
	}
	if err := overrideDisruption(w, f); err != nil {
		return err
	}
	if f.snapshot != "" {
		var at time.Duration
		if f.snapshot == "busiest" {
			at = w.Busiest()
		} else if at, err = parseTraceTime(f.snapshot); err != nil {
			return fmt.Errorf("--snapshot: %w", err)
		}
		w = w.Snapshot(at)
		if cfg.Horizon == 0 {
			cfg.Horizon = time.Hour
		}
	}
	if err := applyFinOps(&f.fin, &cfg, entries, w); err != nil {
		return err
	}
	if err := checkClusterPools(pools, w, cfg); err != nil {
		return err
	}
	if f.verbose {
		z, err := zap.NewDevelopment()
		if err != nil {
			return err
		}
		l := zapr.NewLogger(z)
		cfg.Logger = &l
	} else {
		l := logr.Discard()
		cfg.Logger = &l
	}
	if path := os.Getenv("SIMULATOR_DEBUG_LOG"); path != "" {
		dl, err := os.Create(path)
		if err != nil {
			return err
		}
		defer dl.Close()
		cfg.DebugLog = dl
	}
	showProgress := !f.quiet && (isTerminal(stderr) || f.progressLines)
	cfg.LowerBound = bound.NewCache()
	if d, err := cacheDir(); err == nil && !f.noCache {
		// A window's bound is kept beside the stock results (--no-cache
		// solves it again).
		cfg.LowerBound.Dir = filepath.Join(filepath.Dir(d), "bound")
	}
	if f.lowerBoundOnly {
		start := time.Now()
		usd, solves, exact, err := simulation.LowerBound(context.Background(), w, cfg)
		if err != nil {
			return fmt.Errorf("computing the lower bound, %w", err)
		}
		_, err = fmt.Fprintf(stdout, "lower_bound_usd %.2f (fluid LP, %d solves, %.1f%% of the time solved exactly, %.1fs)\n",
			usd, solves, 100*exact, time.Since(start).Seconds())
		return err
	}
	policies := []simulation.Policy{cfg.Policy}
	if f.compare {
		policies = []simulation.Policy{simulation.PolicyKarpenterGPU, simulation.PolicyStock}
	}
	// The policies of --compare run concurrently: each simulation is
	// sequential and deterministic on its own, and they share nothing but
	// the lower bound of the workload.
	results := make([]*report.Result, len(policies))
	errs := make([]error, len(policies))
	var board *progressBoard
	if showProgress {
		board = newProgressBoard(stderr, policies, f.progressLines)
	}
	var wg sync.WaitGroup
	for i, p := range policies {
		c := cfg
		c.Policy = p
		var key string
		if p == simulation.PolicyStock && !f.noCache {
			if key, err = stockKey(w, c); err != nil {
				fmt.Fprintf(stderr, "simulator: stock cache off: %v\n", err)
			} else if r, ok := loadStock(key); ok {
				r.Cached = true
				results[i] = r
				if board != nil {
					board.update(i)(1, 1)
				}
				continue
			}
		}
		if board != nil {
			c.Progress = board.update(i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = simulation.Run(context.Background(), w, c)
			if errs[i] == nil && key != "" {
				if err := storeStock(key, results[i]); err != nil {
					fmt.Fprintf(stderr, "simulator: caching the stock result: %v\n", err)
				}
			}
		}()
	}
	wg.Wait()
	if board != nil {
		board.finish()
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("simulating %s: %w", policies[i], err)
		}
	}
	fmt.Fprintf(stdout, "input: %s (%d pods), seed %d\n\n", w.Source, len(w.Pods), cfg.Seed)
	if err := report.WriteTable(stdout, results...); err != nil {
		return err
	}
	var out any = results[0]
	if f.compare {
		out = report.Compare(results[0], results[1])
	}
	if f.jsonOut != "" {
		if err := writeFile(f.jsonOut, func(w io.Writer) error { return report.WriteJSON(w, out) }); err != nil {
			return err
		}
	}
	if f.csvOut != "" {
		if err := writeFile(f.csvOut, func(w io.Writer) error { return report.WriteCSV(w, results...) }); err != nil {
			return err
		}
	}
	if err := writeFinOpsOutputs(&f.fin, results); err != nil {
		return err
	}
	if f.htmlOut != "" {
		if err := writeFile(f.htmlOut, func(w io.Writer) error { return report.WriteHTML(w, results...) }); err != nil {
			return err
		}
	}
	return nil
}

// overrideDisruption applies --protection, --break-even-percent,
// --eviction-cost-per-pod, --drain-by-attrition, --repack and
// --consolidation-policy to the workload's node class and NodePools.
func overrideDisruption(w *workload.Workload, f *flags) error {
	protection, percent, policy, attrition, repack, perPod := f.protection, f.breakEvenPercent, f.consolidationPolicy, f.attrition, f.repack, f.evictionCostPerPod
	if protection != "" || percent >= 0 || attrition != "" || repack != "" || perPod != "" {
		nc := w.NodeClass.DeepCopy()
		if nc.Spec.GPU.Disruption == nil {
			nc.Spec.GPU.Disruption = &v1alpha1.GPUDisruption{}
		}
		d := nc.Spec.GPU.Disruption
		if protection != "" {
			switch protection {
			case v1alpha1.ProtectionBreakEven, v1alpha1.ProtectionAlways, v1alpha1.ProtectionNever:
			default:
				return fmt.Errorf("--protection: unknown %q (want BreakEven, Always or Never)", protection)
			}
			d.Protection, d.ProtectRunningGPUPods = &protection, nil
		}
		if percent >= 0 {
			p := int32(percent)
			d.BreakEvenPercent = &p
		}
		if perPod != "" {
			d.EvictionCostPerPod = &perPod
			if _, err := nc.EvictionCostPerPod(); err != nil {
				return fmt.Errorf("--eviction-cost-per-pod: %q is not a non-negative number of dollars", perPod)
			}
		}
		for _, o := range []struct {
			flag, value string
			field       **bool
		}{{"--drain-by-attrition", attrition, &d.DrainByAttrition}, {"--repack", repack, &d.Repack}} {
			if o.value == "" {
				continue
			}
			b, err := strconv.ParseBool(o.value)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", o.flag, o.value)
			}
			*o.field = &b
		}
		w.NodeClass = nc
	}
	if policy != "" {
		switch karpv1.ConsolidationPolicy(policy) {
		case karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized, karpv1.ConsolidationPolicyBalanced, karpv1.ConsolidationPolicyWhenEmpty:
		default:
			return fmt.Errorf("--consolidation-policy: unknown %q (want WhenEmptyOrUnderutilized, Balanced or WhenEmpty)", policy)
		}
		for i, np := range w.NodePools {
			np = np.DeepCopy()
			np.Spec.Disruption.ConsolidationPolicy = karpv1.ConsolidationPolicy(policy)
			w.NodePools[i] = np
		}
	}
	return nil
}

// parseTraceTime reads a trace time: seconds ("1234567") or a Go duration.
func parseTraceTime(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("negative time %q", s)
		}
		return d, nil
	}
	var secs float64
	if _, err := fmt.Sscanf(s, "%g", &secs); err != nil || secs < 0 {
		return 0, fmt.Errorf("malformed time %q, want seconds or a duration such as 100h", s)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func writeFile(path string, write func(io.Writer) error) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBoard draws one progress bar per policy on a single stderr line
// ("karpenter-gpu [#####-----] 42% 63.0/149.3 days | stock ..."), or prints
// lines every 5s when stderr is a log.
type progressBoard struct {
	mu       sync.Mutex
	w        io.Writer
	labels   []string
	done     []float64
	total    time.Duration
	sim      []time.Duration
	lines    bool
	start    time.Time
	lastDraw time.Time
}

func newProgressBoard(w io.Writer, policies []simulation.Policy, lines bool) *progressBoard {
	b := &progressBoard{w: w, lines: lines, start: time.Now()}
	for _, p := range policies {
		b.labels = append(b.labels, string(p))
	}
	b.done = make([]float64, len(policies))
	b.sim = make([]time.Duration, len(policies))
	return b
}

func (b *progressBoard) update(i int) func(simulated, total time.Duration) {
	return func(simulated, total time.Duration) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.total, b.sim[i] = total, simulated
		b.done[i] = 1
		if total > 0 {
			b.done[i] = min(1, float64(simulated)/float64(total))
		}
		interval := 100 * time.Millisecond
		if b.lines {
			interval = 5 * time.Second
		}
		if time.Since(b.lastDraw) >= interval {
			b.draw()
		}
	}
}

func (b *progressBoard) draw() {
	b.lastDraw = time.Now()
	const width = 20
	var parts []string
	for i, l := range b.labels {
		n := int(b.done[i] * width)
		parts = append(parts, fmt.Sprintf("%s [%s%s] %3.0f%% %5.1f/%.1f days", l, strings.Repeat("#", n), strings.Repeat("-", width-n),
			b.done[i]*100, b.sim[i].Hours()/24, b.total.Hours()/24))
	}
	line := strings.Join(parts, " | ") + fmt.Sprintf("  %5.1fs", time.Since(b.start).Seconds())
	if b.lines {
		fmt.Fprintln(b.w, line)
	} else {
		fmt.Fprint(b.w, "\r"+line)
	}
}

func (b *progressBoard) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
	if !b.lines {
		fmt.Fprintln(b.w)
	}
}
