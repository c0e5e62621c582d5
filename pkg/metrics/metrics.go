// Package metrics defines karpenter-gpu's Prometheus metrics (prefix
// karpenter_gpu_, registered on controller-runtime's registry so they are
// served on the controller's /metrics endpoint) and the controller that keeps
// the fleet gauges current. Every metric is documented in README.md next to
// this file.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Namespace is the metric-name prefix of every karpenter-gpu metric.
const Namespace = "karpenter_gpu"

// Label names.
const (
	LabelNodePool     = "nodepool"
	LabelGPUName      = "gpu_name"
	LabelCapacityType = "capacity_type"
	LabelNamespace    = "namespace"
	LabelInstanceType = "instance_type"
	LabelZone         = "zone"
	LabelResult       = "result"
	LabelNodeClaim    = "nodeclaim"
	LabelOutcome      = "outcome"
	LabelAction       = "action"
	LabelMessageType  = "message_type"
)

// Values of the packing decision result label.
const (
	// PackingResultRepacked: the packer's set of NodeClaims was strictly
	// cheaper than core's and replaced it.
	PackingResultRepacked = "repacked"
	// PackingResultKept: core's NodeClaims were launched unchanged.
	PackingResultKept = "kept"
	// PackingResultDirect: a large batch of pending GPU pods was packed
	// without core's scheduler (the provisioning loop's direct path).
	PackingResultDirect = "direct"
)

// NoGPU is the gpu_name of nodes without a GPU label (CPU nodes of a
// GPUNodeClass, or types whose GPU is unknown).
const NoGPU = "none"

var fleetLabels = []string{LabelNodePool, LabelGPUName, LabelCapacityType}

var (
	// FleetCostPerHour is the hourly price of the launched nodes.
	FleetCostPerHour = NewGaugeVec("fleet", "cost_per_hour", "Hourly price (offering price of each node's instance type, zone and capacity type) of the nodes karpenter-gpu launched, by NodePool, GPU model and capacity type.", fleetLabels...)
	// FleetNodes counts the launched nodes.
	FleetNodes = NewGaugeVec("fleet", "nodes", "Nodes karpenter-gpu launched (NodeClaims with a provider ID), by NodePool, GPU model and capacity type.", fleetLabels...)
	// FleetUnpricedNodes counts launched nodes no offering price was found for.
	FleetUnpricedNodes = NewGaugeVec("fleet", "unpriced_nodes", "Launched nodes whose instance type, zone and capacity type match no offering of the cloud provider, so they count zero in karpenter_gpu_fleet_cost_per_hour.", LabelNodePool)
	// GPUsPaid is the accelerators on launched nodes.
	GPUsPaid = NewGaugeVec("", "gpus_paid", "Allocatable accelerators (nvidia.com/gpu, amd.com/gpu, aws.amazon.com/neuron, habana.ai/gaudi) on the nodes karpenter-gpu launched, by NodePool, GPU model and capacity type.", fleetLabels...)
	// GPUsRequested is the accelerators requested by pods bound to launched nodes.
	GPUsRequested = NewGaugeVec("", "gpus_requested", "Accelerators requested by active pods bound to the nodes karpenter-gpu launched, by the node's NodePool, GPU model and capacity type.", fleetLabels...)
	// NamespaceGPUCostPerHour is each namespace's share of the GPU bill.
	NamespaceGPUCostPerHour = NewGaugeVec("", "namespace_gpu_cost_per_hour", "Hourly GPU cost attributed to a namespace: the sum over its active pods of requested accelerators × node price / node accelerators.", LabelNamespace)

	// CapacityErrors counts offerings the cloud refused for capacity.
	CapacityErrors = NewCounterVec("cloudprovider", "capacity_errors_total", "Launch attempts the cloud refused for insufficient capacity, by offering (instance type, zone, capacity type).", LabelInstanceType, LabelZone, LabelCapacityType)

	// PackingDecisions counts GPU packing refinements by outcome.
	PackingDecisions = NewCounterVec("packing", "decisions_total", "Provisioning batches the GPU packer refined, by result: repacked (cheaper than core's NodeClaims, replaced them), kept (core's NodeClaims launched) or direct (a large batch of GPU pods packed without core's scheduler; no savings estimate).", LabelResult)
	// PackingEstimatedSavingsPerHour sums, over repacked decisions, core's
	// $/h minus the packer's $/h.
	PackingEstimatedSavingsPerHour = NewCounter("packing", "estimated_savings_per_hour", "Sum over packing decisions of the hourly price of core's proposed GPU NodeClaims minus that of the packer's (each priced at its cheapest launchable offering).")
	// ProvisioningDecisionSeconds is the latency of packing decisions.
	ProvisioningDecisionSeconds = NewHistogram("provisioning", "decision_seconds", "Time the GPU packer took to refine one provisioning batch.",
		[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})
)

// NewGaugeVec is the gauge vector karpenter_gpu_<subsystem>_<name>
// (karpenter_gpu_<name> when subsystem is empty) with help and labels,
// registered on controller-runtime's registry, which the controller serves
// on /metrics: every karpenter-gpu gauge vector is one.
func NewGaugeVec(subsystem, name, help string, labels ...string) *prometheus.GaugeVec {
	return register(prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help}, labels))
}

// NewCounterVec is NewGaugeVec's counter vector.
func NewCounterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return register(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help}, labels))
}

// NewCounter is NewCounterVec's counter without labels.
func NewCounter(subsystem, name, help string) prometheus.Counter {
	return register(prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help}))
}

// NewHistogram is NewCounter's histogram, with buckets.
func NewHistogram(subsystem, name, help string, buckets []float64) prometheus.Histogram {
	return register(prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets}))
}

func register[C prometheus.Collector](c C) C {
	crmetrics.Registry.MustRegister(c)
	return c
}

// savingsEpsilon ignores floating-point noise between equal costs ($/h).
const savingsEpsilon = 1e-9

// ObserveDirectPacking records a decision of the direct path, where core's
// scheduler did not run (so there is no "before" to save against).
func ObserveDirectPacking(d time.Duration) {
	ProvisioningDecisionSeconds.Observe(d.Seconds())
	PackingDecisions.WithLabelValues(PackingResultDirect).Inc()
}

// ObservePacking records one packing decision: before is the $/h of core's
// proposed GPU NodeClaims, after the $/h of what was launched, d how long the
// decision took. A decision is "repacked" when after is cheaper than before;
// only then do savings accrue.
func ObservePacking(before, after float64, d time.Duration) {
	ProvisioningDecisionSeconds.Observe(d.Seconds())
	if before-after > savingsEpsilon {
		PackingDecisions.WithLabelValues(PackingResultRepacked).Inc()
		PackingEstimatedSavingsPerHour.Add(before - after)
		return
	}
	PackingDecisions.WithLabelValues(PackingResultKept).Inc()
}
