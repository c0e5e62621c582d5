package simulation

// result closes a run's accounts into its report (pkg/simulation/report).

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
)

func (e *engine) result() (*report.Result, error) {
	end := e.horizon
	endD := end.Sub(Epoch)
	r := &report.Result{
		Policy: string(e.cfg.Policy), Input: e.w.Source, Seed: e.cfg.Seed,
		SimulatedHours:        endD.Hours(),
		DisruptionsByReason:   map[string]int{},
		InstanceHoursByType:   map[string]float64{},
		CostUSDByType:         map[string]float64{},
		CostUSDByCapacityType: map[string]float64{},
		FinalFleet:            map[string]int{},
		GPUModelsIgnored:      e.w.IgnoredGPUModels,
		Reconciles:            e.d.reconciles,
		ControllerErrors:      e.metrics.errors,
		ErrorSamples:          e.metrics.errorSamples,
		Controllers:           e.controllerNames(),
		ProvisioningRuns:      e.batch.provisions,
		Settings: report.Settings{
			LaunchLatencySeconds: e.cfg.LaunchLatency.Seconds(), RegistrationDelaySeconds: e.cfg.RegistrationDelay.Seconds(),
			PodStartDelaySeconds: e.cfg.PodStartDelay.Seconds(), BatchIdleSeconds: e.cfg.BatchIdle.Seconds(), BatchMaxSeconds: e.cfg.BatchMax.Seconds(),
			DisruptionIntervalSeconds: max(disruptionPollingPeriod, e.cfg.DisruptionInterval).Seconds(),
		},
		UnschedulablePods: []report.UnschedulablePod{},
	}
	for _, np := range e.w.NodePools {
		r.Settings.NodePools = append(r.Settings.NodePools, np.Name)
	}
	r.Settings.SchedulerProfile = string(e.cfg.SchedulerProfile)
	if e.cfg.Policy == PolicyKarpenterGPU && e.w.NodeClass != nil {
		mode, percent := e.w.NodeClass.GPUWorkProtection()
		perPod, _ := e.w.NodeClass.EvictionCostPerPod() // an invalid value counts 0, as in the controller (breakeven.go)
		r.Settings.GPUDisruption = &report.GPUDisruption{Protection: mode, BreakEvenPercent: percent, EvictionCostPerPod: perPod,
			Repack: e.w.NodeClass.RepackEnabled(), DrainByAttrition: e.w.NodeClass.DrainByAttrition()}
	}
	if len(r.ControllerErrors) == 0 {
		r.ControllerErrors = nil
	}
	if !e.w.IgnoredGPUModels && e.w.GPUMap != nil {
		r.GPUMapping = e.w.GPUMap.Describe()
	}
	recs := e.backend.Records()
	r.Launches = len(recs)
	for _, rec := range recs {
		stop := end
		if !rec.End.IsZero() && rec.End.Before(end) {
			stop = rec.End
		} else {
			r.FinalFleet[rec.Type]++
			r.FinalFleetUSDPerHr += rec.Price
		}
		h := stop.Sub(rec.Start).Hours()
		if h < 0 {
			h = 0
		}
		r.Instances = append(r.Instances, report.InstanceRun{Type: rec.Type, CapacityType: rec.CapacityType, Zone: rec.Zone, NodePool: rec.NodePool,
			USDPerHour: rec.Price, GPUs: rec.GPUs, StartHours: rec.Start.Sub(Epoch).Hours(), EndHours: stop.Sub(Epoch).Hours(), Running: stop.Equal(end)})
		r.CostUSD += rec.Price * h
		r.GPUHoursPaid += float64(rec.GPUs) * h
		r.InstanceHoursByType[rec.Type] += h
		r.CostUSDByType[rec.Type] += rec.Price * h
		r.CostUSDByCapacityType[rec.CapacityType] += rec.Price * h
	}
	cost, gpus := fleetSeries(recs, end)
	requested := requestedSeries(e.w)
	r.GPUHoursRequested = integrate(requested, endD)
	r.GPUHoursAllocated = integrate(e.metrics.alloc, endD)
	r.IdleGPUHours = r.GPUHoursPaid - r.GPUHoursAllocated
	lbStart := time.Now()
	lb, lbSeries, err := e.lowerBound()
	e.timed("lower-bound", lbStart)
	if err != nil {
		return nil, fmt.Errorf("computing the lower bound, %w", err)
	}
	r.LowerBoundUSD = lb
	r.LowerBoundSolves, r.LowerBoundExactTimeShare = e.cfg.LowerBound.Solves(), e.cfg.LowerBound.ExactTime()
	if lb > 0 {
		r.CostOverLowerBound = r.CostUSD / lb
	}
	r.Series = &report.Series{Cost: cost, GPUsPaid: gpus, GPUsAllocated: e.metrics.alloc, GPUsRequested: requested, LowerBound: lbSeries}
	r.CostAllocation = e.costAllocation(recs, endD)
	r.SpotInterruptions = e.spot.interruptions
	r.Prices = e.cfg.PricesDescription
	r.Notes = append(append([]string(nil), e.w.Notes...), e.notes...)

	r.PodsTotal = len(e.pods)
	r.PodsArrived = len(e.pods)
	if win := e.w.Window; win != nil {
		r.PodsAliveAtStart, r.PodsArrived = win.AliveAtStart, win.Arrived
	}
	r.PodsExcluded, r.ExcludedPods, r.CPUPods = len(e.w.Excluded), e.w.Excluded, string(e.w.CPUPods)
	for _, ps := range e.pods {
		if ps.spec.GPUs() > 0 {
			r.GPUPodsTotal++
		}
		if ps.everRan || ps.spec.Arrival >= endD {
			continue
		}
		reason, err := e.unschedulable(ps)
		if err != nil {
			return nil, err
		}
		if reason == "" {
			r.PodsNeverStarted++
			continue
		}
		r.PodsUnschedulable++
		r.UnschedulablePods = append(r.UnschedulablePods, report.UnschedulablePod{Name: ps.spec.Name, Origin: ps.spec.Origin, Reason: reason})
	}
	waits := append([]float64(nil), e.metrics.waits...)
	sort.Float64s(waits)
	r.PodWaitSeconds = report.Percentiles{P50: percentile(waits, 50), P95: percentile(waits, 95), P99: percentile(waits, 99), Count: len(waits)}
	if len(waits) > 0 {
		r.PodWaitSeconds.Max = waits[len(waits)-1]
	}
	r.PodEvictions, r.GPUPodEvictions = e.metrics.evictions, e.metrics.gpuEvictions
	r.GPUPodEvictionsByCause = maps.Clone(e.metrics.gpuEvictionsByCause)
	r.GPUPodsEvicted = e.metrics.gpuPodsEvicted
	r.Evictions = map[string]report.EvictionStats{}
	for cl, l := range e.metrics.byClass {
		st := report.EvictionStats{Evictions: l.evictions, GPUEvictions: l.gpuEvictions, LostGPUHours: l.lostGPUHours, RerunUSD: l.rerunUSD}
		if len(l.delays) > 0 {
			d := append([]float64(nil), l.delays...)
			sort.Float64s(d)
			st.CompletionDelaySeconds = &report.Percentiles{P50: percentile(d, 50), P95: percentile(d, 95), P99: percentile(d, 99), Max: d[len(d)-1], Count: len(d)}
		}
		r.Evictions[string(cl)] = st
		r.LostGPUHours += l.lostGPUHours
		r.RerunUSD += l.rerunUSD
	}
	r.NodeClaimDeletions = e.changes.ClaimDeletions()
	r.IdleGPURemovals = r.NodeClaimDeletions["karpenter-gpu.idlegpu"]
	for _, c := range e.disrupt.commands {
		r.DisruptionCommands++
		r.Disruptions += len(c.Candidates)
		r.DisruptionsByReason[strings.ToLower(c.Reason)] += len(c.Candidates)
	}
	if e.refiner != nil {
		ps := &report.PackerStats{Unchanged: map[string]int{}}
		for _, d := range e.refiner.Decisions() {
			ps.Runs++
			ps.PodsConsidered += d.PodsConsidered
			ps.PodsRepacked += d.PodsRepacked
			ps.NodeClaimsBefore += d.NodeClaimsBefore
			ps.NodeClaimsAfter += d.NodeClaimsAfter
			ps.CoreUSDPerHour += d.CoreCost
			ps.PackedUSDPerHour += d.PackedCost
			for _, u := range d.Unchanged {
				ps.Unchanged[u.Reason] += u.Pods
			}
		}
		r.Packer = ps
	}
	r.Gangs = e.gangReport()
	r.WallSeconds = time.Since(e.wallStart).Seconds()
	r.Profile = map[string]report.PhaseTime{}
	for k, v := range e.phases {
		r.Profile[k] = report.PhaseTime{Seconds: v.Seconds(), Calls: e.counts[k]}
	}
	return r, nil
}

// unschedulable asks Karpenter core's scheduler whether a pod fits any
// instance type of any NodePool on its own, on an empty cluster: the error
// it reports, or "" when it fits. Answers are cached per pod shape.
func (e *engine) unschedulable(ps *podState) (string, error) {
	if e.soloErrors == nil {
		e.soloErrors = map[string]string{}
	}
	probe := &podState{spec: ps.spec, name: "probe-" + ps.spec.Name}
	pod := e.podObject(probe)
	key := shapeKey(resources.RequestsForPods(pod), ps.spec)
	if reason, ok := e.soloErrors[key]; ok {
		return reason, nil
	}
	pod.UID = types.UID("probe-" + ps.spec.Key())
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}
	s, err := e.coreProv.NewScheduler(e.ctx, []*corev1.Pod{pod}, nil, nil)
	if err != nil {
		return "", fmt.Errorf("building core's scheduler for %s, %w", ps.spec.Name, err)
	}
	res, err := s.Solve(e.ctx, []*corev1.Pod{pod})
	if err != nil {
		return "", fmt.Errorf("scheduling %s alone, %w", ps.spec.Name, err)
	}
	reason := ""
	for p, perr := range res.PodErrors {
		if p.UID == pod.UID {
			reason = perr.Error()
		}
	}
	e.soloErrors[key] = reason
	return reason, nil
}
