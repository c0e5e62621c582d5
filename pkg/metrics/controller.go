package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/awslabs/operatorpkg/singleton"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// PollInterval is how often the fleet gauges are recomputed.
const PollInterval = 30 * time.Second

// Controller recomputes the fleet gauges (cost, GPUs paid and requested,
// namespace GPU cost) from NodeClaims, Nodes, Pods and the cloud provider's
// instance types. It is a singleton, so only the leader exports them and a
// sum over replicas counts the fleet once.
type Controller struct {
	opts Options
}

// Options are NewController's inputs.
type Options struct {
	Clock      clock.Clock // nil means the real clock
	KubeClient client.Client
	// CloudProvider prices nodes through GetInstanceTypes; pass the
	// decorated provider to have NodeOverlay price adjustments reflected in
	// the cost metrics.
	CloudProvider karpcp.CloudProvider
}

// NewController returns the metrics controller.
func NewController(o Options) *Controller {
	o.Clock = lo.Ternary[clock.Clock](o.Clock == nil, clock.RealClock{}, o.Clock)
	return &Controller{opts: o}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.metrics" }

// Register wires the singleton into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(c.Name()).WatchesRawSource(singleton.Source()).Complete(singleton.AsReconciler(c))
}

// fleetKey is the label set of the fleet gauges.
type fleetKey struct{ nodePool, gpuName, capacityType string }

func (k fleetKey) values() []string { return []string{k.nodePool, k.gpuName, k.capacityType} }

// fleet is one reconcile's computed gauge values.
type fleet struct {
	cost, nodes, paid, requested map[fleetKey]float64
	unpriced                     map[string]float64
	namespaceCost                map[string]float64
	offerings                    map[offeringKey]*offeringValue
}

// Reconcile recomputes every fleet gauge.
func (c *Controller) Reconcile(ctx context.Context) (reconciler.Result, error) {
	f, err := c.compute(ctx)
	if err != nil {
		return reconciler.Result{}, err
	}
	f.publish()
	return reconciler.Result{RequeueAfter: PollInterval}, nil
}

func (c *Controller) compute(ctx context.Context) (*fleet, error) {
	var ncs karpv1.NodeClaimList
	var nodes corev1.NodeList
	var pods corev1.PodList
	var pools karpv1.NodePoolList
	for _, l := range []client.ObjectList{&ncs, &nodes, &pods, &pools} {
		if err := c.opts.KubeClient.List(ctx, l); err != nil {
			return nil, fmt.Errorf("listing %T, %w", l, err)
		}
	}
	nodesByProviderID := map[string]*corev1.Node{}
	for i := range nodes.Items {
		if id := nodes.Items[i].Spec.ProviderID; id != "" {
			nodesByProviderID[id] = &nodes.Items[i]
		}
	}
	podsByNode := map[string][]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != "" && podutils.IsActive(p) {
			podsByNode[p.Spec.NodeName] = append(podsByNode[p.Spec.NodeName], p)
		}
	}
	prices := &pricer{ctx: ctx, cloudProvider: c.opts.CloudProvider, pools: lo.SliceToMap(pools.Items, func(np karpv1.NodePool) (string, *karpv1.NodePool) { return np.Name, &np }), byPool: map[string]map[string]*karpcp.InstanceType{}, failed: map[string]bool{}}

	f := &fleet{
		cost: map[fleetKey]float64{}, nodes: map[fleetKey]float64{}, paid: map[fleetKey]float64{}, requested: map[fleetKey]float64{},
		unpriced: map[string]float64{}, namespaceCost: map[string]float64{},
	}
	for i := range ncs.Items {
		nc := &ncs.Items[i]
		if nc.Spec.NodeClassRef == nil || nc.Spec.NodeClassRef.Group != v1alpha1.Group || nc.Status.ProviderID == "" {
			continue
		}
		node := nodesByProviderID[nc.Status.ProviderID]
		labels := nodeLabels(nc, node)
		key := fleetKey{
			nodePool:     labels[karpv1.NodePoolLabelKey],
			gpuName:      lo.CoalesceOrEmpty(labels[v1alpha1.LabelGPUName], labels[v1alpha1.LabelAcceleratorName], NoGPU),
			capacityType: labels[karpv1.CapacityTypeLabelKey],
		}
		gpus := nodeGPUs(nc, node)
		price, priced := prices.price(key.nodePool, labels)
		f.nodes[key]++
		f.paid[key] += float64(gpus)
		if priced {
			f.cost[key] += price
		} else {
			f.unpriced[key.nodePool]++
		}
		if node == nil {
			continue
		}
		for _, p := range podsByNode[node.Name] {
			requested := v1alpha1.PodAccelerators(p)
			if requested == 0 {
				continue
			}
			f.requested[key] += float64(requested)
			if priced && gpus > 0 {
				f.namespaceCost[p.Namespace] += float64(requested) * price / float64(gpus)
			}
		}
	}
	f.offerings = prices.offerings()
	if prices.err != nil {
		log.FromContext(ctx).V(1).Info("some nodes or offerings could not be priced", "error", prices.err.Error())
	}
	return f, nil
}

// publish replaces every fleet gauge's series with f's, dropping series of
// label sets that no longer exist.
func (f *fleet) publish() {
	for _, g := range []struct {
		vec    *prometheus.GaugeVec
		values map[fleetKey]float64
	}{{FleetCostPerHour, f.cost}, {FleetNodes, f.nodes}, {GPUsPaid, f.paid}, {GPUsRequested, f.requested}} {
		g.vec.Reset()
		for k, v := range g.values {
			g.vec.WithLabelValues(k.values()...).Set(v)
		}
	}
	// gpus_requested is published for every label set that has nodes, so
	// requested/paid ratios exist for idle fleets too.
	for k := range f.nodes {
		if _, ok := f.requested[k]; !ok {
			GPUsRequested.WithLabelValues(k.values()...).Set(0)
		}
	}
	FleetUnpricedNodes.Reset()
	for pool, v := range f.unpriced {
		FleetUnpricedNodes.WithLabelValues(pool).Set(v)
	}
	NamespaceGPUCostPerHour.Reset()
	for ns, v := range f.namespaceCost {
		NamespaceGPUCostPerHour.WithLabelValues(ns).Set(v)
	}
	publishOfferings(f.offerings)
}

// nodeLabels returns the NodeClaim's labels completed by its Node's (core
// copies NodeClaim labels to the Node; the Node may carry more).
func nodeLabels(nc *karpv1.NodeClaim, node *corev1.Node) map[string]string {
	labels := lo.Assign(nc.Labels)
	if node != nil {
		for k, v := range node.Labels {
			if _, ok := labels[k]; !ok {
				labels[k] = v
			}
		}
	}
	return labels
}

// nodeGPUs is the node's allocatable accelerators, or the NodeClaim's before
// the node registers.
func nodeGPUs(nc *karpv1.NodeClaim, node *corev1.Node) int64 {
	if node != nil {
		if n := v1alpha1.Accelerators(node.Status.Allocatable); n > 0 {
			return n
		}
	}
	if n := v1alpha1.Accelerators(nc.Status.Allocatable); n > 0 {
		return n
	}
	return v1alpha1.Accelerators(nc.Status.Capacity)
}

// pricer finds the hourly price of a node from the cloud provider's instance
// types for its NodePool, caching them for one reconcile.
type pricer struct {
	ctx           context.Context
	cloudProvider karpcp.CloudProvider
	pools         map[string]*karpv1.NodePool
	byPool        map[string]map[string]*karpcp.InstanceType
	failed        map[string]bool // NodePools whose GetInstanceTypes failed
	defaultTypes  map[string]*karpcp.InstanceType
	err           error
}

func (p *pricer) instanceTypes(pool string) map[string]*karpcp.InstanceType {
	if its, ok := p.byPool[pool]; ok {
		return its
	}
	np, ok := p.pools[pool]
	if !ok {
		// The NodePool is gone (its nodes are draining): price with the
		// default instance types.
		p.byPool[pool] = p.defaults()
		return p.byPool[pool]
	}
	its, err := p.cloudProvider.GetInstanceTypes(p.ctx, np)
	if err != nil {
		p.err = fmt.Errorf("getting instance types of NodePool %q, %w", pool, err)
		p.failed[pool] = true
		p.byPool[pool] = p.defaults()
		return p.byPool[pool]
	}
	p.byPool[pool] = byName(its)
	return p.byPool[pool]
}

// defaults returns GetInstanceTypes(ctx, nil), once per reconcile.
func (p *pricer) defaults() map[string]*karpcp.InstanceType {
	if p.defaultTypes == nil {
		its, err := p.cloudProvider.GetInstanceTypes(p.ctx, nil)
		if err != nil {
			p.err = fmt.Errorf("getting default instance types, %w", err)
		}
		p.defaultTypes = byName(its)
	}
	return p.defaultTypes
}

func byName(its []*karpcp.InstanceType) map[string]*karpcp.InstanceType {
	return lo.SliceToMap(its, func(it *karpcp.InstanceType) (string, *karpcp.InstanceType) { return it.Name, it })
}

// price returns the price of the offering matching the node's instance type,
// zone and capacity type (and capacity reservation, when several reserved
// offerings match), available or not: a running node keeps its price after
// its offering runs out.
func (p *pricer) price(pool string, labels map[string]string) (float64, bool) {
	it, ok := p.instanceTypes(pool)[labels[corev1.LabelInstanceTypeStable]]
	if !ok {
		return 0, false
	}
	zone, capacityType := labels[corev1.LabelTopologyZone], labels[karpv1.CapacityTypeLabelKey]
	matches := lo.Filter(it.Offerings, func(o *karpcp.Offering, _ int) bool {
		return o.Zone() == zone && o.CapacityType() == capacityType
	})
	if len(matches) == 0 {
		return 0, false
	}
	if id := labels[karpcp.ReservationIDLabel]; id != "" {
		if o, ok := lo.Find(matches, func(o *karpcp.Offering) bool { return o.ReservationID() == id }); ok {
			return o.Price, true
		}
	}
	return matches[0].Price, true
}
