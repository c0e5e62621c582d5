package idlegpu

// Break-even protection (ski rental): a node running GPU pods is kept out of
// voluntary disruption while the money it has wasted since it became
// reclaimable is below the cost of evicting its GPU pods; once waiting has
// cost as much as evicting would, it is released to consolidation. Waiting
// forever (the old protect-all) strands big nodes sized for pods that left;
// evicting at once (stock) re-runs work and restarts replicas for savings
// the pods' own departure would often have brought minutes later. The rule
// keeps either loss within a factor of two of the better choice in
// hindsight.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/utils/disruption"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// reclaimableMargin: a node whose right-sized replacement saves less than
// this share of its price is not reclaimable (no consolidation would be
// worth a disruption, and core's own price comparisons have the same
// granularity).
const reclaimableMargin = 0.05

// ledger is one node's account of waiting.
type ledger struct {
	// wasted is the money ($) the node has billed beyond a right-sized
	// fleet for its pods since it became reclaimable, as of last.
	wasted float64
	last   time.Time
	rate   float64 // $/h wasted at last
	// released is set once waste reached the eviction cost; it holds until
	// the node is no longer reclaimable or its GPU work ends (a decision
	// made is not revisited every time a pod's lost work grows back after a
	// checkpoint).
	released bool
	// nextCheck is the earliest time the rule could release the node if
	// nothing changes (zero when released or not reclaimable).
	nextCheck time.Time
}

// economics is what the break-even rule weighs for one node.
type economics struct {
	price, rightSized float64 // $/h
	evictionUSD       float64 // evicting its GPU pods now
	// evictionSlope is d(evictionUSD)/dt ($/h) until the next checkpoint
	// boundary of any batch pod (nextDrop), when it falls.
	evictionSlope float64
	nextDrop      time.Time
	// reason, when set, says why the node cannot be judged (no price, pods
	// the packer cannot place): it stays protected.
	reason string
}

func (e economics) wasteRate() float64 {
	if e.reason != "" || e.price <= 0 || e.rightSized >= e.price*(1-reclaimableMargin) {
		return 0
	}
	return e.price - e.rightSized
}

// economicsOf prices the node, its right-sized replacement (the packer's
// cheapest set of new nodes of the node's NodePool for its pods) and the
// eviction of its GPU pods.
func (c *Controller) economicsOf(ctx context.Context, gn gpuNode, np *karpv1.NodePool) economics {
	if np == nil {
		return economics{reason: "its NodePool is gone"}
	}
	its, err := c.instanceTypes(ctx, np)
	if err != nil {
		return economics{reason: fmt.Sprintf("listing instance types, %v", err)}
	}
	var it *karpcp.InstanceType
	for _, t := range its {
		if t.Name == gn.nodeClaim.Labels[corev1.LabelInstanceTypeStable] {
			it = t
		}
	}
	price := disruption.ResolveOfferingPrice(gn.nodeClaim.Labels, it)
	if price <= 0 {
		return economics{reason: "no price for its offering"}
	}
	e := economics{price: price}
	var movable []*corev1.Pod
	for _, p := range gn.pods {
		if podutils.IsOwnedByDaemonSet(p) || podutils.IsTerminating(p) {
			continue
		}
		movable = append(movable, p)
	}
	rs, ok := c.rightSized(np, its, movable)
	if !ok {
		return economics{reason: "its pods cannot all be placed on new nodes of its NodePool"}
	}
	e.rightSized = rs
	gpuPrice := price / float64(max(gn.gpus, 1))
	now := c.clk.Now()
	perPod, err := gn.nodeClass.EvictionCostPerPod()
	if err != nil {
		// The CRD refuses such a value; one stored before the rule counts 0.
		log.FromContext(ctx).Error(err, "ignoring the per-pod eviction cost")
	}
	for _, p := range movable {
		gpus := v1alpha1.PodAccelerators(p)
		if gpus == 0 {
			continue
		}
		prof, err := c.eviction.ProfileOf(p)
		if err != nil {
			c.recorder.Publish(invalidAnnotationEvent(p, err))
		}
		var ran time.Duration
		if p.Status.StartTime != nil {
			ran = now.Sub(p.Status.StartTime.Time)
		}
		// A workload displaced recently weighs Repeat's multiplier more
		// until its window ends (when the estimate falls: a drop).
		mult := 1.0
		if until, ok := c.displacedUntil(evictioncost.Workload(p)); ok {
			mult = c.eviction.Repeat.Multiplier
			if e.nextDrop.IsZero() || until.Before(e.nextDrop) {
				e.nextDrop = until
			}
		}
		e.evictionUSD += mult * prof.USD(ran, gpus, gpuPrice)
		if prof.FixedUSD == nil {
			e.evictionUSD += mult * perPod
		}
		if prof.FixedUSD == nil && prof.Class == evictioncost.Batch {
			e.evictionSlope += mult * float64(gpus) * gpuPrice
			if prof.CheckpointInterval > 0 && p.Status.StartTime != nil {
				next := now.Add(prof.CheckpointInterval - ran%prof.CheckpointInterval)
				if e.nextDrop.IsZero() || next.Before(e.nextDrop) {
					e.nextDrop = next
				}
			}
		}
	}
	return e
}

// rightSized is the cheapest $/h of new nodes of np holding pods (memoised
// by the NodePool's catalog and the pods' shapes), and false when the
// packer cannot place them all.
func (c *Controller) rightSized(np *karpv1.NodePool, its []*karpcp.InstanceType, pods []*corev1.Pod) (float64, bool) {
	if len(pods) == 0 {
		return 0, true
	}
	key := c.shapesKey(pods)
	if key != "" {
		key = c.catalogKey(np, its) + "/" + key
	}
	c.mu.Lock()
	v, ok := c.rightSizedCache[key]
	c.mu.Unlock()
	if ok && key != "" {
		return v, !math.IsNaN(v)
	}
	copies := make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		copies[i] = p.DeepCopy()
		copies[i].Spec.NodeName = ""
	}
	plan := packing.PackPods(np, its, copies, packing.Options{})
	v = plan.Cost
	if len(plan.Rejected) > 0 || len(plan.NodeClaims) == 0 {
		v = math.NaN()
	}
	c.mu.Lock()
	if len(c.rightSizedCache) > 10000 {
		c.rightSizedCache = map[string]float64{}
	}
	c.rightSizedCache[key] = v
	c.mu.Unlock()
	return v, !math.IsNaN(v)
}

// polledInstanceTypes is a NodePool's answer from the cloud provider in
// this poll.
type polledInstanceTypes struct {
	its []*karpcp.InstanceType
	err error
}

// instanceTypes is the cloud provider's GetInstanceTypes for the NodePool,
// asked once per poll (newPoll) like catalogKey: prices and availability
// change between polls, not within one, and the provider's decorators
// (overlays, metrics) copy the catalog on every call.
func (c *Controller) instanceTypes(ctx context.Context, np *karpv1.NodePool) ([]*karpcp.InstanceType, error) {
	c.mu.Lock()
	got, ok := c.pollInstanceTypes[np.Name]
	c.mu.Unlock()
	if ok {
		return got.its, got.err
	}
	its, err := c.cloudProvider.GetInstanceTypes(ctx, np)
	c.mu.Lock()
	if c.pollInstanceTypes != nil {
		c.pollInstanceTypes[np.Name] = polledInstanceTypes{its: its, err: err}
	}
	c.mu.Unlock()
	return its, err
}

// catalogKey is repack.CatalogKey of the NodePool, looked up once per poll
// (newPoll) for each NodePool: prices and availability change between
// polls (a price refresh, an offering marked unavailable), not within one.
// Across polls the key is recomputed only when what it hashes may have
// changed (sameCatalog): the NodePool's name, UID or spec, the instance-type
// slice, its InstanceType or Offering objects, or any offering's price,
// availability or reservation capacity. An InstanceType's name, capacity
// and overhead, and an offering's requirements (zone, capacity type,
// reservation), are fixed once it is built (Karpenter caches allocatable
// inside it); a provider builds new objects for a new catalog
// (pkg/cloudprovider returns its cached slice until an input of its cache
// key changes). The memo holds the objects, so their addresses are not
// reused.
func (c *Controller) catalogKey(np *karpv1.NodePool, its []*karpcp.InstanceType) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.catalogKeys[np.Name]; ok {
		return k
	}
	spec, err := json.Marshal(np.Spec)
	m, hit := c.catalogMemo[np.Name]
	var k string
	if hit && err == nil && m.uid == np.UID && bytes.Equal(m.spec, spec) && m.sameCatalog(its) {
		k = m.key
	} else {
		k = repack.CatalogKey(np, its)
		if err == nil {
			if c.catalogMemo == nil {
				c.catalogMemo = map[string]*catalogMemo{}
			}
			c.catalogMemo[np.Name] = newCatalogMemo(np.UID, spec, its, k)
		} else {
			delete(c.catalogMemo, np.Name)
		}
	}
	if c.catalogKeys != nil {
		c.catalogKeys[np.Name] = k
	}
	return k
}

// catalogMemo is a NodePool's catalog key with what it was computed from.
type catalogMemo struct {
	uid    types.UID
	spec   []byte
	its    []*karpcp.InstanceType
	counts []int // offerings of each instance type
	offers []offerState
	key    string
}

// offerState is an offering as the catalog key saw it.
type offerState struct {
	o         *karpcp.Offering
	price     float64
	available bool
	capacity  int
}

func newCatalogMemo(uid types.UID, spec []byte, its []*karpcp.InstanceType, key string) *catalogMemo {
	m := &catalogMemo{uid: uid, spec: spec, its: slices.Clone(its), counts: make([]int, len(its)), key: key}
	for i, it := range its {
		m.counts[i] = len(it.Offerings)
		for _, o := range it.Offerings {
			m.offers = append(m.offers, offerState{o: o, price: o.Price, available: o.Available, capacity: o.ReservationCapacity})
		}
	}
	return m
}

// sameCatalog reports whether its holds the memo's InstanceType and
// Offering objects, in order, with the same prices, availability and
// reservation capacities (prices compared bit for bit, as the key prints them).
func (m *catalogMemo) sameCatalog(its []*karpcp.InstanceType) bool {
	if len(its) != len(m.its) {
		return false
	}
	j := 0
	for i, it := range its {
		if it != m.its[i] || len(it.Offerings) != m.counts[i] {
			return false
		}
		for _, o := range it.Offerings {
			s := m.offers[j]
			if o != s.o || math.Float64bits(o.Price) != math.Float64bits(s.price) || o.Available != s.available || o.ReservationCapacity != s.capacity {
				return false
			}
			j++
		}
	}
	return true
}

// newPoll starts a poll's memos: the instance types and catalog keys are
// asked for again, and the pod shapes of the last poll are kept for pods
// whose object is unchanged.
func (c *Controller) newPoll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.catalogKeys = map[string]string{}
	c.pollInstanceTypes = map[string]polledInstanceTypes{}
	c.idleDue = map[string]time.Time{}
	c.lastPodShapes, c.podShapes = c.podShapes, map[types.UID]podShape{}
}

// podShape is a pod's shape hash (shapeOf) at one resourceVersion.
type podShape struct {
	resourceVersion string
	hash            uint64
}

// shapesKey identifies what the packer sees of pods: their requests and
// limits, selectors, affinities and tolerations, as a multiset. Each pod's
// shape is hashed (shapeOf, memoised by UID and resourceVersion); the
// hashes are sorted, so two pods of one shape count twice. "" when a shape
// cannot be encoded (not memoised).
func (c *Controller) shapesKey(pods []*corev1.Pod) string {
	hashes := make([]uint64, 0, len(pods))
	for _, p := range pods {
		h, ok := c.podShapeHash(p)
		if !ok {
			return ""
		}
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	f := fnv.New128a()
	for _, h := range hashes {
		_ = binary.Write(f, binary.LittleEndian, h)
	}
	return fmt.Sprintf("%d/%x", len(hashes), f.Sum(nil))
}

func (c *Controller) podShapeHash(p *corev1.Pod) (uint64, bool) {
	if p.UID == "" || p.ResourceVersion == "" {
		return shapeOf(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.podShapes[p.UID]
	if !ok || s.resourceVersion != p.ResourceVersion {
		s, ok = c.lastPodShapes[p.UID]
	}
	if !ok || s.resourceVersion != p.ResourceVersion {
		h, hashed := shapeOf(p)
		if !hashed {
			return 0, false
		}
		s = podShape{resourceVersion: p.ResourceVersion, hash: h}
	}
	if c.podShapes != nil {
		c.podShapes[p.UID] = s
	}
	return s.hash, true
}

// shapeOf hashes a pod's JSON shape (quantities as their canonical
// strings, maps sorted). (A struct hash such as hashstructure sees none of
// a Quantity's unexported value, and its set mode XORs identical shapes
// away.)
func shapeOf(p *corev1.Pod) (uint64, bool) {
	shape, err := json.Marshal(struct {
		Containers   []corev1.ResourceRequirements
		NodeSelector map[string]string
		Affinity     *corev1.Affinity
		Tolerations  []corev1.Toleration
	}{lo.Map(p.Spec.Containers, func(c corev1.Container, _ int) corev1.ResourceRequirements { return c.Resources }), p.Spec.NodeSelector, p.Spec.Affinity, p.Spec.Tolerations})
	if err != nil {
		return 0, false
	}
	h := fnv.New64a()
	_, _ = h.Write(shape)
	return h.Sum64(), true
}

// breakEven updates the node's ledger and says whether it stays protected.
func (c *Controller) breakEven(gn gpuNode, e economics, percent int32) (bool, *ledger) {
	return c.breakEvenIn(c.ledgers, gn, e, percent)
}

// breakEvenIn is breakEven on one set of accounts (c.ledgers, or
// c.fleetLedgers for the fleet's waste, fleet.go).
func (c *Controller) breakEvenIn(ledgers map[string]*ledger, gn gpuNode, e economics, percent int32) (bool, *ledger) {
	now := c.clk.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	l := ledgers[gn.nodeClaim.Name]
	if l == nil {
		l = &ledger{last: now}
		ledgers[gn.nodeClaim.Name] = l
	}
	rate := e.wasteRate()
	if rate <= 0 {
		// Right-sized (or not judgeable): nothing is wasted; a later waste
		// starts a new account.
		*l = ledger{last: now}
		return true, l
	}
	if l.rate > 0 {
		l.wasted += l.rate * now.Sub(l.last).Hours()
	}
	l.rate, l.last = rate, now
	threshold := float64(percent) / 100 * e.evictionUSD
	if !l.released && l.wasted >= threshold {
		l.released = true
	}
	l.nextCheck = time.Time{}
	if !l.released {
		l.nextCheck = nextCrossing(now, l.wasted, rate, threshold, float64(percent)/100*e.evictionSlope, e.nextDrop)
	}
	return !l.released, l
}

// nextCrossing is the earliest time waste (wasted + rate·t) can reach the
// threshold (threshold + slope·t, falling at drop), if nothing changes: the
// linear crossing, or the next drop, whichever comes first (zero: never).
func nextCrossing(now time.Time, wasted, rate, threshold, slope float64, drop time.Time) time.Time {
	var at time.Time
	if gain := rate - slope; gain > 0 {
		at = now.Add(time.Duration((threshold - wasted) / gain * float64(time.Hour)))
	}
	if !drop.IsZero() && (at.IsZero() || drop.Before(at)) {
		at = drop
	}
	return at
}

// NextCheck is the earliest time a poll could act if the cluster does not
// change (false when nothing is pending): a node protected by the
// break-even rule could be released, a GPU node without GPU work reaches
// its idleAfter (a past time while such a node is due but was not
// removed), or the repacker has a step due. The simulator uses it to skip
// polls that cannot act.
func (c *Controller) NextCheck() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at time.Time
	for _, due := range c.idleDue {
		if at.IsZero() || due.Before(at) {
			at = due
		}
	}
	for _, l := range lo.Flatten([][]*ledger{lo.Values(c.ledgers), lo.Values(c.fleetLedgers)}) {
		if !l.nextCheck.IsZero() && (at.IsZero() || l.nextCheck.Before(at)) {
			at = l.nextCheck
		}
	}
	if c.repacker != nil {
		if next, ok := c.repacker.NextCheck(); ok && (at.IsZero() || next.Before(at)) {
			at = next
		}
	}
	return at, !at.IsZero()
}
