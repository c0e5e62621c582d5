// Package repack is the GPU repacking move: a GPU node that break-even
// protection has released to consolidation (pkg/controllers/idlegpu) is
// replaced by the packer's cheapest set of new nodes for its pods when that
// set has more than one node and costs less by a margin. Karpenter core's
// consolidation can delete a node whose pods fit elsewhere or replace it
// with exactly one cheaper node; it never splits an 8-GPU node left with
// two 1-GPU pods into two 1-GPU nodes. The move is make-before-break: the
// replacements are launched and Initialized before the old NodeClaim is
// deleted, and core's termination then drains the old node within
// PodDisruptionBudgets. A user's do-not-disrupt (node or pod) and PDBs that
// would block the evictions stop a move before it starts. A move may merge
// more nodes than the NodePool's disruption budget (underutilized) allows at
// once: the old nodes are deleted a budget's worth at a time, each once
// every replacement is Ready, so no more nodes are disrupting at any moment
// than the budget allows (a staged merge).
//
// The move's state lives in annotations (pkg/apis/v1alpha1, Repack*), so a
// restart continues it. The idle-GPU controller drives the Repacker on its
// poll, right after break-even protection, and keeps the node being
// repacked protected from core's consolidation while the move runs.
package repack

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/utils/disruption"
	"sigs.k8s.io/karpenter/pkg/utils/pdb"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/guard"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

const (
	// Margin: a move is made only when its replacements cost at most
	// (1 − Margin) × the node's price (a move disrupts pods; core's own
	// consolidation decisions are no finer than this).
	Margin = 0.10
	// ReadyTimeout: a move whose replacements are not all Initialized
	// this long after launch is abandoned (they are deleted).
	ReadyTimeout = 15 * time.Minute
	// HoldAfterMove: replacements stay out of consolidation this long after
	// the old node was deleted, or until they run a pod, so core does not
	// remove them as empty before the evicted pods land.
	HoldAfterMove = 5 * time.Minute
	// Backoff: a node whose move was abandoned is not repacked again for
	// this long.
	Backoff = time.Hour
	// MaxMerge caps how many released nodes one merge takes (the most
	// expensive first); their deletions are staged within the budget.
	MaxMerge = 16
	// Reason is the NodeClaim creation reason of replacements.
	Reason = "repack"
)

// Options are New's inputs.
type Options struct {
	Clock         clock.Clock
	KubeClient    client.Client
	Recorder      events.Recorder
	CloudProvider karpcp.CloudProvider
	// Provisioner creates the replacement NodeClaims exactly as core's
	// provisioner creates its own.
	Provisioner *coreprov.Provisioner
}

// Repacker plans and runs repacking moves.
type Repacker struct {
	clk         clock.Clock
	kube        client.Client
	recorder    events.Recorder
	cp          karpcp.CloudProvider
	provisioner *coreprov.Provisioner
	// backoff: NodeClaim name → time before which it is not repacked.
	backoff map[string]time.Time
	// next is the earliest time a move's own timer (Ready timeout, a
	// replacement's hold, a backoff) ends, as of the last Reconcile.
	next time.Time
	// noMove: NodePool name → the key (bestKey) of the inputs for which
	// Best last found no move. Best is a pure function of them, so while a
	// pool's released nodes, their pods, its instance types and the
	// NodePool are unchanged, the poll does not ask the packer again (a
	// pruned merge of 16 nodes takes up to 136 packings).
	noMove map[string]string
	// plans counts Best's runs (tests).
	plans int
}

// NextCheck is when a timer of the moves in flight ends if the cluster does
// not change (false: none); the simulator's idle driver wakes for it.
func (r *Repacker) NextCheck() (time.Time, bool) {
	return r.next, !r.next.IsZero()
}

func (r *Repacker) wakeAt(t time.Time) {
	if t.After(r.clk.Now()) && (r.next.IsZero() || t.Before(r.next)) {
		r.next = t
	}
}

// New returns a Repacker.
func New(o Options) *Repacker {
	return &Repacker{clk: o.Clock, kube: o.KubeClient, recorder: o.Recorder, cp: o.CloudProvider, provisioner: o.Provisioner, backoff: map[string]time.Time{}, noMove: map[string]string{}}
}

// Candidate is a GPU node break-even protection has released.
type Candidate struct {
	NodeClaim *karpv1.NodeClaim
	Node      *corev1.Node
	NodePool  *karpv1.NodePool
	Pods      []*corev1.Pod // active pods bound to the node
	Price     float64       // $/h of its offering
}

// Move is a planned repack of one node.
type Move struct {
	NodeClaims []*scheduling.NodeClaim
	Cost       float64 // $/h of the replacements
	Pods       []*corev1.Pod
}

// Plan is the pure decision: the packer's cheapest set of new NodeClaims of
// np for the pods (daemonset and terminating pods excluded), when every pod
// is placed, the set has more than one NodeClaim (one cheaper node is a
// replacement core's consolidation makes itself) and it costs at most
// (1 − Margin) × price. Otherwise it returns why not.
func Plan(np *karpv1.NodePool, its []*karpcp.InstanceType, pods []*corev1.Pod, price float64) (Move, string) {
	m, ok := packGroup(np, its, []Candidate{{Pods: pods}})
	switch {
	case len(m.Pods) == 0 && ok:
		return Move{}, "no pods to move"
	case !ok:
		return Move{}, "the packer cannot place all of its pods on new nodes"
	case len(m.NodeClaims) < 2:
		return Move{}, "its cheapest replacement is a single node (core's consolidation replaces it)"
	case m.Cost > price*(1-Margin):
		return Move{}, fmt.Sprintf("replacements cost $%.3f/h against $%.3f/h (less than %.0f%% saved)", m.Cost, price, Margin*100)
	}
	return m, ""
}

// Best picks one move among a pool's released candidates: the merge of up
// to MaxMerge of them (the most expensive first) into the packer's cheapest
// set of new nodes for all their pods, pruned to the nodes that pay for
// moving their pods (prune), when it saves at least Margin of their price
// (core's multi-node consolidation replaces several nodes with at most one,
// and only with its own first-fit packing), or else the single-node split
// (Plan) that saves the most.
func Best(np *karpv1.NodePool, its []*karpcp.InstanceType, cands []Candidate) ([]Candidate, Move, bool) {
	sorted := append([]Candidate(nil), cands...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Price > sorted[j].Price })
	var bestOlds []Candidate
	var best Move
	bestSaving := 0.0
	if n := min(len(sorted), MaxMerge); n >= 2 {
		if group, m, ok := prune(np, its, sorted[:n]); ok {
			price := priceOf(group)
			if len(m.Pods) > 0 && m.Cost <= price*(1-Margin) && (len(group) > 1 || len(m.NodeClaims) > 1) {
				bestOlds, best, bestSaving = group, m, price-m.Cost
			}
		}
	}
	for _, c := range sorted {
		if m, why := Plan(np, its, c.Pods, c.Price); why == "" && c.Price-m.Cost > bestSaving {
			bestOlds, best, bestSaving = []Candidate{c}, m, c.Price-m.Cost
		}
	}
	return bestOlds, best, bestSaving > 0
}

// best is Best, skipped when its inputs are those of the pool's last
// answer without a move.
func (r *Repacker) best(np *karpv1.NodePool, its []*karpcp.InstanceType, cands []Candidate) ([]Candidate, Move, bool) {
	key := bestKey(np, its, cands)
	if r.noMove[np.Name] == key {
		return nil, Move{}, false
	}
	r.plans++
	olds, move, ok := Best(np, its, cands)
	if ok {
		delete(r.noMove, np.Name)
	} else {
		r.noMove[np.Name] = key
	}
	return olds, move, ok
}

// bestKey identifies what Best decides from: the NodePool's spec, every
// instance type's capacity, overhead and offerings (price, availability,
// zone, capacity type and reservation), and, in order, each candidate's NodeClaim, price
// and movable pods.
func bestKey(np *karpv1.NodePool, its []*karpcp.InstanceType, cands []Candidate) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(CatalogKey(np, its)))
	for _, c := range cands {
		fmt.Fprintf(h, "|%s %g %s", c.NodeClaim.Name, c.Price, podsKey(Movable(c.Pods)))
	}
	return fmt.Sprintf("%x", h.Sum64())
}

// CatalogKey identifies what the packer sees of a NodePool's capacity: the
// NodePool's identity and spec, and every instance type's capacity,
// overhead and offerings (price, availability, zone, capacity type and
// reservation). A memo of packer answers keyed by it is invalidated by a
// price refresh, an offering marked unavailable (insufficient capacity) or
// a NodePool edit.
func CatalogKey(np *karpv1.NodePool, its []*karpcp.InstanceType) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s|", np.Name, np.UID)
	spec, _ := json.Marshal(np.Spec)
	_, _ = h.Write(spec)
	for _, it := range its {
		fmt.Fprintf(h, "|%s %v %v", it.Name, resources.String(it.Capacity), resources.String(it.Overhead.Total()))
		for _, o := range it.Offerings {
			fmt.Fprintf(h, ";%g %t %s %s %s %d", o.Price, o.Available, o.Zone(), o.CapacityType(), o.ReservationID(), o.ReservationCapacity)
		}
	}
	return fmt.Sprintf("%x", h.Sum64())
}

// prune drops from a merge, one at a time, the node whose pods pay least
// for their move, while that node's marginal saving (the merge's saving
// with it minus without it) is below Margin of its own price: the share a
// node moved alone must save. A node the packer would rebuild as it is, or
// whose pods only fill the replacements its siblings need anyway, is left
// where it is and its pods are not evicted. It returns the merge's pruned
// nodes and move, false when the packer cannot place their pods.
func prune(np *karpv1.NodePool, its []*karpcp.InstanceType, group []Candidate) ([]Candidate, Move, bool) {
	m, ok := packGroup(np, its, group)
	if !ok {
		return nil, Move{}, false
	}
	for len(group) > 1 {
		saving := priceOf(group) - m.Cost
		drop, dropMove, worst := -1, Move{}, Margin
		for i := range group {
			rest := slices.Delete(slices.Clone(group), i, i+1)
			rm, ok := packGroup(np, its, rest)
			if !ok {
				continue
			}
			// The node's marginal saving, as a share of its price.
			if share := (saving - (priceOf(rest) - rm.Cost)) / group[i].Price; share < worst {
				drop, dropMove, worst = i, rm, share
			}
		}
		if drop < 0 {
			break
		}
		group, m = slices.Delete(slices.Clone(group), drop, drop+1), dropMove
	}
	return group, m, true
}

// packGroup is the packer's cheapest set of new NodeClaims of np for the
// movable pods of the nodes, false when it cannot place every one.
func packGroup(np *karpv1.NodePool, its []*karpcp.InstanceType, group []Candidate) (Move, bool) {
	var pods []*corev1.Pod
	for _, c := range group {
		pods = append(pods, Movable(c.Pods)...)
	}
	if len(pods) == 0 {
		return Move{}, true
	}
	copies := lo.Map(pods, func(p *corev1.Pod, _ int) *corev1.Pod {
		c := p.DeepCopy()
		c.Spec.NodeName = ""
		return c
	})
	plan := packing.PackPods(np, its, copies, packing.Options{})
	if len(plan.Rejected) > 0 {
		return Move{}, false
	}
	return Move{NodeClaims: plan.NodeClaims, Cost: plan.Cost, Pods: pods}, true
}

func priceOf(group []Candidate) float64 {
	return lo.SumBy(group, func(c Candidate) float64 { return c.Price })
}

// Movable are the pods a move relocates: active, not owned by a daemonset.
func Movable(pods []*corev1.Pod) []*corev1.Pod {
	return lo.Filter(pods, func(p *corev1.Pod, _ int) bool {
		return !podutils.IsOwnedByDaemonSet(p) && !podutils.IsTerminating(p) && podutils.IsActive(p)
	})
}

// InFlight reports whether the NodeClaim is being repacked.
func InFlight(nc *karpv1.NodeClaim) bool {
	return nc.Annotations[v1alpha1.AnnotationRepackReplacements] != ""
}

// IsReplacement reports whether the object (NodeClaim or Node) is a
// replacement still held by its move.
func IsReplacement(obj client.Object) bool {
	return obj.GetAnnotations()[v1alpha1.AnnotationRepackOf] != ""
}

// Reconcile advances the moves in flight, then starts new ones among the
// candidates: at most one move in flight per NodePool, started when the
// pool has budget left. Every old node's deletion takes one of its pool's
// budget (budgets is decremented); a Ready move waits for budget.
func (r *Repacker) Reconcile(ctx context.Context, candidates []Candidate, budgets map[string]int) error {
	// The lists may hand out a cache's own objects: nothing here changes
	// one in place (a write replaces its maps and slices, and a patch fills
	// the list's copy of the struct).
	var ncs karpv1.NodeClaimList
	if err := r.kube.List(ctx, &ncs, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing NodeClaims, %w", err)
	}
	var pods corev1.PodList
	if err := r.kube.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing pods, %w", err)
	}
	var nodes corev1.NodeList
	if err := r.kube.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing nodes, %w", err)
	}
	byName := lo.SliceToMap(ncs.Items, func(nc karpv1.NodeClaim) (string, *karpv1.NodeClaim) { return nc.Name, &nc })
	nodeByProviderID := lo.SliceToMap(nodes.Items, func(n corev1.Node) (string, *corev1.Node) { return n.Spec.ProviderID, &n })
	podsByNode := lo.GroupBy(lo.Filter(lo.ToSlicePtr(pods.Items), func(p *corev1.Pod, _ int) bool { return p.Spec.NodeName != "" && podutils.IsActive(p) }),
		func(p *corev1.Pod) string { return p.Spec.NodeName })
	// podsOf are the pods bound to the NodeClaim's node, and the node.
	podsOf := func(nc *karpv1.NodeClaim) ([]*corev1.Pod, *corev1.Node) {
		n := nodeByProviderID[nc.Status.ProviderID]
		if n == nil || nc.Status.ProviderID == "" {
			return nil, nil
		}
		return podsByNode[n.Name], n
	}
	busyPools := map[string]bool{}
	r.next = time.Time{}
	for name, until := range r.backoff {
		if !until.After(r.clk.Now()) {
			delete(r.backoff, name)
			continue
		}
		r.wakeAt(until)
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		nc := byName[name]
		switch {
		case InFlight(nc) && nc.DeletionTimestamp.IsZero():
			busyPools[nc.Labels[karpv1.NodePoolLabelKey]] = true
			pods, _ := podsOf(nc)
			if err := r.advance(ctx, nc, byName, pods, budgets); err != nil {
				return err
			}
		case IsReplacement(nc):
			pods, node := podsOf(nc)
			if err := r.releaseReplacement(ctx, nc, node, byName, pods); err != nil {
				return err
			}
		}
	}
	limits, err := pdb.NewLimits(ctx, r.kube)
	if err != nil {
		return fmt.Errorf("listing PodDisruptionBudgets, %w", err)
	}
	// Eligible candidates per pool: not blocked, not backed off, in a pool
	// with no move in flight and budget left.
	eligible := map[string][]Candidate{}
	var poolOrder []string
	for _, c := range candidates {
		pool := c.NodePool.Name
		if busyPools[pool] || budgets[pool] <= 0 || InFlight(c.NodeClaim) || r.clk.Now().Before(r.backoff[c.NodeClaim.Name]) {
			continue
		}
		if reason, blocked := r.blocked(c, limits); blocked {
			log.FromContext(ctx).V(1).Info("not repacking", "NodeClaim", c.NodeClaim.Name, "reason", reason)
			continue
		}
		if _, ok := eligible[pool]; !ok {
			poolOrder = append(poolOrder, pool)
		}
		eligible[pool] = append(eligible[pool], c)
	}
	for _, pool := range poolOrder {
		cands := eligible[pool]
		its, err := r.cp.GetInstanceTypes(ctx, cands[0].NodePool)
		if err != nil {
			return fmt.Errorf("listing instance types of NodePool %s, %w", pool, err)
		}
		olds, move, ok := r.best(cands[0].NodePool, its, cands)
		if !ok {
			continue
		}
		if err := r.start(ctx, olds, move); err != nil {
			return err
		}
		busyPools[pool] = true
	}
	return nil
}

// blocked applies the user's protections (pkg/controllers/guard).
func (r *Repacker) blocked(c Candidate, limits pdb.Limits) (string, bool) {
	return guard.Blocked(r.clk, r.recorder, limits, c.NodeClaim, c.Node, c.Pods)
}

// start launches the replacements (held out of consolidation) and records
// the move on every old NodeClaim.
func (r *Repacker) start(ctx context.Context, olds []Candidate, m Move) error {
	oldNames := lo.Map(olds, func(c Candidate, _ int) string { return c.NodeClaim.Name })
	for _, nc := range m.NodeClaims {
		nc.Annotations = lo.Assign(nc.Annotations, map[string]string{
			karpv1.DoNotDisruptAnnotationKey: "true",
			v1alpha1.AnnotationRepackOf:      strings.Join(oldNames, ","),
		})
		// The pods are not pending: kube-scheduler places the evicted pods
		// when they come back. Core's CreateNodeClaims records nothing for
		// them without RecordPodNomination.
	}
	names, err := r.provisioner.CreateNodeClaims(ctx, m.NodeClaims, coreprov.WithReason(Reason))
	names = lo.Compact(names)
	if err != nil {
		r.deleteNames(ctx, names)
		return fmt.Errorf("launching repack replacements for %v, %w", oldNames, err)
	}
	price := 0.0
	for _, c := range olds {
		price += c.Price
		stored := c.NodeClaim.DeepCopy()
		c.NodeClaim.Annotations = lo.Assign(c.NodeClaim.Annotations, map[string]string{
			v1alpha1.AnnotationRepackReplacements: strings.Join(names, ","),
			v1alpha1.AnnotationRepackStartedAt:    r.clk.Now().UTC().Format(time.RFC3339),
			v1alpha1.AnnotationRepackPods:         podsKey(Movable(c.Pods)),
		})
		if err := r.kube.Patch(ctx, c.NodeClaim, client.MergeFrom(stored)); err != nil {
			r.deleteNames(ctx, names)
			return client.IgnoreNotFound(fmt.Errorf("recording the repack of %s, %w", c.NodeClaim.Name, err))
		}
		// Keep core's consolidation off the node while the move runs
		// (marked as break-even protection's, which holds it while the move
		// is in flight and releases it after).
		storedNode := c.Node.DeepCopy()
		c.Node.Annotations = lo.Assign(c.Node.Annotations, map[string]string{karpv1.DoNotDisruptAnnotationKey: "true", v1alpha1.AnnotationProtectedGPUWork: "true"})
		if err := r.kube.Patch(ctx, c.Node, client.MergeFrom(storedNode)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("protecting node %s during its repack, %w", c.Node.Name, err)
		}
		r.recorder.Publish(events.Event{
			InvolvedObject: c.NodeClaim, Type: corev1.EventTypeNormal, Reason: "GPUNodeRepacking",
			Message: fmt.Sprintf("Repacking the %d pods of %d nodes ($%.3f/h) onto %d new nodes (%s) at $%.3f/h; this node is deleted once they are Ready",
				len(m.Pods), len(olds), price, len(names), strings.Join(names, ", "), m.Cost),
			DedupeValues: []string{string(c.NodeClaim.UID), "started"},
		})
	}
	gpumetrics.RepacksTotal.WithLabelValues(olds[0].NodePool.Name, "started").Add(float64(len(olds)))
	log.FromContext(ctx).Info("repacking GPU nodes", "NodeClaims", oldNames, "replacements", names, "price", price, "replacements-price", m.Cost)
	return nil
}

// advance moves a move in flight on: delete the old NodeClaim once every
// replacement is Initialized and its pool has budget; abandon the move when
// a replacement failed, the node's pods changed, or the replacements are
// late.
func (r *Repacker) advance(ctx context.Context, old *karpv1.NodeClaim, byName map[string]*karpv1.NodeClaim, pods []*corev1.Pod, budgets map[string]int) error {
	names := strings.Split(old.Annotations[v1alpha1.AnnotationRepackReplacements], ",")
	started, _ := time.Parse(time.RFC3339, old.Annotations[v1alpha1.AnnotationRepackStartedAt])
	ready := 0
	for _, n := range names {
		nc, ok := byName[n]
		switch {
		case !ok || !nc.DeletionTimestamp.IsZero():
			return r.abort(ctx, old, names, byName, fmt.Sprintf("replacement %s failed to launch or was deleted", n))
		case nc.StatusConditions().Get(karpv1.ConditionTypeInitialized).IsTrue():
			ready++
		}
	}
	if podsKey(Movable(pods)) != old.Annotations[v1alpha1.AnnotationRepackPods] {
		return r.abort(ctx, old, names, byName, "its pods changed since the move was planned")
	}
	if ready < len(names) {
		r.wakeAt(started.Add(ReadyTimeout + time.Second))
		if r.clk.Since(started) > ReadyTimeout {
			return r.abort(ctx, old, names, byName, fmt.Sprintf("%d of %d replacements not Ready after %s", len(names)-ready, len(names), ReadyTimeout))
		}
		return nil
	}
	pool := old.Labels[karpv1.NodePoolLabelKey]
	if budgets[pool] <= 0 {
		return nil // staged: the next poll after a deletion ends
	}
	// Make-before-break: every replacement is Ready. Mark them so they are
	// held until the evicted pods land, then delete the old node; core's
	// termination drains it within PDBs.
	now := r.clk.Now().UTC().Format(time.RFC3339)
	var saved float64
	for _, n := range names {
		nc := byName[n]
		stored := nc.DeepCopy()
		nc.Annotations = lo.Assign(nc.Annotations, map[string]string{v1alpha1.AnnotationRepackCompletedAt: now})
		if err := r.kube.Patch(ctx, nc, client.MergeFrom(stored)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("marking repack replacement %s, %w", n, err)
		}
	}
	if err := r.kube.Delete(ctx, old); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting repacked NodeClaim %s, %w", old.Name, err)
	}
	budgets[pool]--
	gpumetrics.RepacksTotal.WithLabelValues(pool, "completed").Inc()
	if saved = r.savings(ctx, old, names, byName); saved > 0 {
		gpumetrics.RepackSavingsUSDPerHour.WithLabelValues(pool).Add(saved)
	}
	r.recorder.Publish(events.Event{
		InvolvedObject: old, Type: corev1.EventTypeNormal, Reason: "GPUNodeRepacked",
		Message:      fmt.Sprintf("Replacements %s are Ready; deleting this node (saves $%.3f/h)", strings.Join(names, ", "), saved),
		DedupeValues: []string{string(old.UID), "completed"},
	})
	log.FromContext(ctx).Info("repacked GPU node", "NodeClaim", old.Name, "replacements", names, "saved-usd-per-hour", saved)
	return nil
}

// savings is the old node's price minus its replacements' (by their
// launched offering), 0 when a price is unknown.
func (r *Repacker) savings(ctx context.Context, old *karpv1.NodeClaim, names []string, byName map[string]*karpv1.NodeClaim) float64 {
	price := func(nc *karpv1.NodeClaim) float64 {
		np := &karpv1.NodePool{}
		if err := r.kube.Get(ctx, client.ObjectKey{Name: nc.Labels[karpv1.NodePoolLabelKey]}, np); err != nil {
			return 0
		}
		its, err := r.cp.GetInstanceTypes(ctx, np)
		if err != nil {
			return 0
		}
		it, _ := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == nc.Labels[corev1.LabelInstanceTypeStable] })
		// Core's own rule for a NodeClaim's price (as break-even uses).
		return max(disruption.ResolveOfferingPrice(nc.Labels, it), 0)
	}
	saved := price(old)
	if saved == 0 {
		return 0
	}
	for _, n := range names {
		p := price(byName[n])
		if p == 0 {
			return 0
		}
		// A merge's replacements serve all of its old nodes: charge each
		// its share.
		saved -= p / float64(len(strings.Split(byName[n].Annotations[v1alpha1.AnnotationRepackOf], ",")))
	}
	return saved
}

// abort deletes the replacements, clears the move and backs the node off.
// Once another old node of the move was deleted (the replacements are
// marked completed), its pods are on the replacements: they stay, and only
// this node leaves the move.
func (r *Repacker) abort(ctx context.Context, old *karpv1.NodeClaim, names []string, byName map[string]*karpv1.NodeClaim, why string) error {
	if lo.SomeBy(names, func(n string) bool {
		nc, ok := byName[n]
		return ok && nc.Annotations[v1alpha1.AnnotationRepackCompletedAt] != ""
	}) {
		why += "; the replacements stay for the nodes already moved"
	} else {
		r.deleteNames(ctx, names)
		why += "; replacements deleted"
	}
	stored := old.DeepCopy()
	old.Annotations = lo.OmitByKeys(old.Annotations, []string{v1alpha1.AnnotationRepackReplacements, v1alpha1.AnnotationRepackStartedAt, v1alpha1.AnnotationRepackPods})
	if err := r.kube.Patch(ctx, old, client.MergeFrom(stored)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("clearing the repack of %s, %w", old.Name, err)
	}
	r.backoff[old.Name] = r.clk.Now().Add(Backoff)
	gpumetrics.RepacksTotal.WithLabelValues(old.Labels[karpv1.NodePoolLabelKey], "aborted").Inc()
	r.recorder.Publish(events.Event{
		InvolvedObject: old, Type: corev1.EventTypeWarning, Reason: "GPUNodeRepackAborted",
		Message: "Repack abandoned: " + why, DedupeValues: []string{string(old.UID), "aborted"},
	})
	log.FromContext(ctx).Info("abandoned GPU repack", "NodeClaim", old.Name, "reason", why)
	return nil
}

// releaseReplacement ends a replacement's hold once its move is over: the
// old node gone (or its move abandoned) and the replacement running a pod,
// or HoldAfterMove past completion.
func (r *Repacker) releaseReplacement(ctx context.Context, nc *karpv1.NodeClaim, node *corev1.Node, byName map[string]*karpv1.NodeClaim, pods []*corev1.Pod) error {
	for _, name := range strings.Split(nc.Annotations[v1alpha1.AnnotationRepackOf], ",") {
		if old, ok := byName[name]; ok && InFlight(old) && old.DeletionTimestamp.IsZero() {
			return nil // still in flight
		}
	}
	completed, err := time.Parse(time.RFC3339, nc.Annotations[v1alpha1.AnnotationRepackCompletedAt])
	if err == nil && len(Movable(pods)) == 0 && r.clk.Since(completed) < HoldAfterMove {
		r.wakeAt(completed.Add(HoldAfterMove))
		return nil
	}
	strip := func(obj client.Object) error {
		stored := obj.DeepCopyObject().(client.Object)
		obj.SetAnnotations(lo.OmitByKeys(obj.GetAnnotations(), []string{karpv1.DoNotDisruptAnnotationKey, v1alpha1.AnnotationRepackOf, v1alpha1.AnnotationRepackCompletedAt}))
		return client.IgnoreNotFound(r.kube.Patch(ctx, obj, client.MergeFrom(stored)))
	}
	if node != nil && IsReplacement(node) {
		if err := strip(node); err != nil {
			return fmt.Errorf("releasing repack replacement node %s, %w", node.Name, err)
		}
	}
	if err := strip(nc); err != nil {
		return fmt.Errorf("releasing repack replacement %s, %w", nc.Name, err)
	}
	return nil
}

func (r *Repacker) deleteNames(ctx context.Context, names []string) {
	for _, n := range names {
		if n == "" {
			continue
		}
		if err := r.kube.Delete(ctx, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: n}}); client.IgnoreNotFound(err) != nil {
			log.FromContext(ctx).Error(err, "deleting repack replacement", "NodeClaim", n)
		}
	}
}

// podsKey identifies a set of pods by UID.
func podsKey(pods []*corev1.Pod) string {
	uids := lo.Map(pods, func(p *corev1.Pod, _ int) string { return string(p.UID) })
	sort.Strings(uids)
	h := fnv.New64a()
	for _, u := range uids {
		_, _ = h.Write([]byte(u))
		_, _ = h.Write([]byte{0})
	}
	return fmt.Sprintf("%d-%x", len(uids), h.Sum64())
}
