package provisioningrequest

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// Plan is the node set an atomic request launches.
type Plan struct {
	Zone       string
	NodeClaims []*scheduling.NodeClaim
	Cost       float64 // $/h
}

// atomic drives a best-effort-atomic-scale-up request that is not
// provisioned yet: wait out a backoff, watch an attempt in flight, or start
// one.
func (c *Controller) atomic(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, pods podList) (reconcile.Result, error) {
	now := c.clock.Now()
	if _, inFlight := detailTime(pr, DetailStarted); inFlight {
		return c.watchAttempt(ctx, pr)
	}
	if after, ok := detailTime(pr, DetailRetryAfter); ok && now.Before(after) {
		// Between attempts nothing of the request runs.
		return reconcile.Result{RequeueAfter: after.Sub(now)}, c.sweep(ctx, pr)
	}
	// Everything on nodes that exist: nothing to launch (as Cluster
	// Autoscaler, which scales up only for pods that do not fit). A gang
	// split between existing nodes and new ones could span zones, so
	// existing nodes count only when they hold the whole request.
	placed, err := c.placeOnExisting(ctx, pr, pods.all)
	if err != nil {
		return reconcile.Result{}, err
	}
	if placed == len(pods.all) {
		setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionTrue, ReasonCapacityIsFound, MsgCapacityIsFound, metav1.NewTime(now))
		setDetail(pr, DetailBooking, BookingHeld)
		return reconcile.Result{RequeueAfter: c.opts.BookingTTL}, nil
	}
	attempt := detailInt(pr, DetailAttempt) + 1
	// One gang in flight per zone: gangs launched side by side in a zone
	// compete for the same capacity, and when it runs short each loses a
	// node and all of them roll back (and retry into each other again).
	busy, err := c.busyZones(ctx, pr)
	if err != nil {
		return reconcile.Result{}, err
	}
	plan, why, err := c.planAtomic(ctx, pods.all, busy)
	if err != nil {
		return reconcile.Result{}, err
	}
	if plan == nil && len(busy) > 0 {
		if free, _, err := c.planAtomic(ctx, pods.all, nil); err == nil && free != nil {
			setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonProvisioning,
				fmt.Sprintf("Waiting: the zones that hold the gang (%s) are launching other gangs", free.Zone), metav1.NewTime(now))
			return reconcile.Result{RequeueAfter: pollInterval}, nil
		}
	}
	if plan == nil {
		setDetail(pr, DetailAttempt, strconv.Itoa(attempt))
		return c.attemptFailed(ctx, pr, attempt, "no NodePool and zone hold every pod: "+why)
	}
	// Record the attempt before creating anything, so a restart in the
	// middle finds it and rolls back what exists. Refused (conflict) when
	// pr is a stale copy: nothing is created, Reconcile requeues.
	setDetail(pr, DetailAttempt, strconv.Itoa(attempt))
	setDetail(pr, DetailStarted, now.UTC().Format(time.RFC3339Nano))
	setDetail(pr, DetailZone, plan.Zone)
	setDetail(pr, DetailCost, strconv.FormatFloat(plan.Cost, 'f', 4, 64))
	setDetail(pr, DetailRetryAfter, "")
	if err := c.kube.Status().Update(ctx, pr); err != nil {
		return reconcile.Result{}, err
	}
	names, err := c.launch(ctx, pr, attempt, plan)
	setDetail(pr, DetailNodeClaims, strings.Join(names, ","))
	if err != nil {
		return c.attemptFailed(ctx, pr, attempt, fmt.Sprintf("creating NodeClaims: %v", err))
	}
	setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonProvisioning,
		fmt.Sprintf("Attempt %d: launching %d nodes in %s ($%.2f/h); all must register within %s", attempt, len(names), plan.Zone, plan.Cost, c.opts.LaunchTimeout), metav1.NewTime(now))
	log.FromContext(ctx).Info("launching gang", "attempt", attempt, "zone", plan.Zone, "nodeclaims", len(names), "costPerHour", plan.Cost)
	return reconcile.Result{RequeueAfter: pollInterval}, nil
}

// launch creates the plan's NodeClaims, labelled and held for the request.
func (c *Controller) launch(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, attempt int, plan *Plan) ([]string, error) {
	names := make([]string, 0, len(plan.NodeClaims))
	for _, snc := range plan.NodeClaims {
		nc := snc.ToNodeClaim()
		nc.Labels = lo.Assign(nc.Labels, map[string]string{LabelRequest: string(pr.UID), LabelAttempt: strconv.Itoa(attempt)})
		nc.Annotations = lo.Assign(nc.Annotations, map[string]string{
			karpv1.DoNotDisruptAnnotationKey: "true",
			AnnotationRequest:                pr.Namespace + "/" + pr.Name,
			AnnotationGangSize:               strconv.Itoa(len(plan.NodeClaims)),
		})
		if _, group := GroupKey(pr); group {
			// A pod group's pods tolerate it once ungated; nothing else
			// does until the booking is released.
			nc.Spec.Taints = append(nc.Spec.Taints, BookingTaint(string(pr.UID)))
		}
		if err := c.kube.Create(ctx, nc); err != nil {
			return names, err
		}
		names = append(names, nc.Name)
	}
	return names, nil
}

// watchAttempt checks an attempt in flight: all registered → Provisioned;
// one gone, deleting, or the timeout passed → roll back.
func (c *Controller) watchAttempt(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (reconcile.Result, error) {
	started, _ := detailTime(pr, DetailStarted)
	attempt := detailInt(pr, DetailAttempt)
	names := lo.Compact(strings.Split(detail(pr, DetailNodeClaims), ","))
	age := c.clock.Now().Sub(started)
	if len(names) == 0 {
		if age < createGrace {
			return reconcile.Result{RequeueAfter: createGrace - age}, nil
		}
		return c.attemptFailed(ctx, pr, attempt, "the attempt recorded no NodeClaims (interrupted before they were created)")
	}
	registered := 0
	var launching []string
	for _, name := range names {
		nc, err := c.getNodeClaim(ctx, name)
		if err != nil {
			return reconcile.Result{}, err
		}
		if nc == nil {
			if age < createGrace && c.opts.APIReader == nil {
				launching = append(launching, name)
				continue
			}
			return c.attemptFailed(ctx, pr, attempt, fmt.Sprintf("NodeClaim %s was deleted before it registered (its launch was refused or failed)", name))
		}
		if !nc.DeletionTimestamp.IsZero() {
			return c.attemptFailed(ctx, pr, attempt, fmt.Sprintf("NodeClaim %s is being deleted before it registered", name))
		}
		if nc.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue() {
			registered++
			continue
		}
		if l := nc.StatusConditions().Get(karpv1.ConditionTypeLaunched); l != nil && l.IsFalse() && l.Message != "" {
			launching = append(launching, fmt.Sprintf("%s (%s)", name, l.Message))
		} else {
			launching = append(launching, name)
		}
	}
	now := metav1.NewTime(c.clock.Now())
	if registered == len(names) {
		setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionTrue, ReasonCapacityIsProvisioned, MsgCapacityIsProvisioned, now)
		setDetail(pr, DetailStarted, "")
		setDetail(pr, DetailBooking, BookingHeld)
		log.FromContext(ctx).Info("gang provisioned", "attempt", attempt, "nodeclaims", len(names), "after", age.String())
		return reconcile.Result{RequeueAfter: c.opts.BookingTTL}, nil
	}
	if age >= c.opts.LaunchTimeout {
		return c.attemptFailed(ctx, pr, attempt, fmt.Sprintf("%d of %d nodes registered within %s; not registered: %s",
			registered, len(names), c.opts.LaunchTimeout, strings.Join(lo.Slice(launching, 0, 5), ", ")))
	}
	return reconcile.Result{RequeueAfter: min(pollInterval, c.opts.LaunchTimeout-age)}, nil
}

// attemptFailed deletes everything launched for the request, then either
// schedules the next attempt or, after MaxAttempts, fails the request.
func (c *Controller) attemptFailed(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, attempt int, why string) (reconcile.Result, error) {
	deleted, err := c.deleteNodeClaims(ctx, pr, lo.Compact(strings.Split(detail(pr, DetailNodeClaims), ",")))
	if err != nil {
		return reconcile.Result{}, err
	}
	now := c.clock.Now()
	setDetail(pr, DetailStarted, "")
	setDetail(pr, DetailNodeClaims, "")
	log.FromContext(ctx).Info("gang attempt failed; rolled back", "attempt", attempt, "reason", why, "deletedNodeClaims", deleted)
	if attempt >= c.opts.MaxAttempts && !hasDeadline(pr) {
		msg := fmt.Sprintf("Capacity is not found: attempt %d of %d failed: %s; everything launched for it was deleted", attempt, c.opts.MaxAttempts, why)
		setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonCapacityIsNotFound, msg, metav1.NewTime(now))
		setCondition(pr, autoscalingv1.Failed, metav1.ConditionTrue, ReasonCapacityIsNotFound, msg, metav1.NewTime(now))
		return reconcile.Result{}, nil
	}
	backoff := jitter(Backoff(c.opts.RetryBackoff, attempt), string(pr.UID))
	setDetail(pr, DetailRetryAfter, now.Add(backoff).UTC().Format(time.RFC3339Nano))
	setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonCapacityIsNotFound,
		fmt.Sprintf("Capacity is not found: attempt %d%s failed: %s; everything launched for it was deleted; retrying in %s", attempt,
			lo.Ternary(hasDeadline(pr), " (retrying until "+ParamValidUntilSeconds+")", fmt.Sprintf(" of %d", c.opts.MaxAttempts)), why, backoff), metav1.NewTime(now))
	return reconcile.Result{RequeueAfter: backoff}, nil
}

// Backoff is the wait after the attempt-th failed attempt: base doubled
// per attempt after the first, capped at MaxRetryBackoff.
func Backoff(base time.Duration, attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(base) * math.Pow(2, float64(attempt-1))
	return time.Duration(math.Min(d, float64(MaxRetryBackoff)))
}

// jitter adds up to a fifth to d, fixed per request, so requests that
// failed together do not retry together.
func jitter(d time.Duration, uid string) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(uid))
	return d + time.Duration(float64(d)*0.2*float64(h.Sum32()%1000)/1000).Round(time.Second)
}

// deleteNodeClaims deletes every NodeClaim launched for the request (any
// attempt) that is not deleting already, and the named ones (the attempt's
// own, deleted by name: the informer cache may not list a NodeClaim created
// a moment ago); core's termination removes the instances.
func (c *Controller) deleteNodeClaims(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, names []string) (int, error) {
	list := &karpv1.NodeClaimList{}
	if err := c.kube.List(ctx, list, client.MatchingLabels{LabelRequest: string(pr.UID)}); err != nil {
		return 0, err
	}
	n := 0
	seen := map[string]bool{}
	for i := range list.Items {
		nc := &list.Items[i]
		seen[nc.Name] = true
		if !nc.DeletionTimestamp.IsZero() {
			continue
		}
		if err := c.kube.Delete(ctx, nc); client.IgnoreNotFound(err) != nil {
			return n, err
		}
		n++
	}
	for _, name := range names {
		if seen[name] {
			continue
		}
		err := c.kube.Delete(ctx, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if client.IgnoreNotFound(err) != nil {
			return n, err
		}
		if err == nil {
			n++
		}
	}
	return n, nil
}

// sweep deletes whatever of the request is still around while no attempt
// is in flight (between attempts, once Failed).
func (c *Controller) sweep(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) error {
	n, err := c.deleteNodeClaims(ctx, pr, nil)
	if n > 0 {
		log.FromContext(ctx).Info("deleted NodeClaims of a gang with no attempt in flight", "deletedNodeClaims", n)
	}
	return err
}

// getNodeClaim reads a NodeClaim from the cache and, when the cache does
// not have it and an API reader is set, from the API server; nil when it
// does not exist.
func (c *Controller) getNodeClaim(ctx context.Context, name string) (*karpv1.NodeClaim, error) {
	nc := &karpv1.NodeClaim{}
	err := c.kube.Get(ctx, client.ObjectKey{Name: name}, nc)
	if apierrors.IsNotFound(err) && c.opts.APIReader != nil {
		err = c.opts.APIReader.Get(ctx, client.ObjectKey{Name: name}, nc)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return nc, nil
}

// PlanAtomic plans new capacity for every pod in one zone: for each zone the
// NodePools offer, the GPU packer packs the pods pinned to it over the
// NodePools in weight order (provisioning.PackPending); the cheapest zone whose
// plan holds every pod wins (ties by zone name). Nil with a reason when no
// zone holds them all.
func (c *Controller) PlanAtomic(ctx context.Context, pods []*corev1.Pod) (*Plan, string, error) {
	return c.planAtomic(ctx, pods, nil)
}

// planAtomic is PlanAtomic leaving out the zones in skip.
func (c *Controller) planAtomic(ctx context.Context, pods []*corev1.Pod, skip map[string]bool) (*Plan, string, error) {
	opts, err := c.packingOptions(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(opts.NodePools) == 0 {
		return nil, "no ready NodePool", nil
	}
	zones := zonesOf(opts)
	if len(zones) == 0 {
		return nil, "no NodePool has an available offering", nil
	}
	var best *Plan
	reasons := map[string]string{}
	for _, z := range zones {
		if skip[z] {
			reasons[z] = "launching another gang"
			continue
		}
		pinned, ok := withZone(pods, z)
		if !ok {
			reasons[z] = "pods select another zone"
			continue
		}
		pp := provisioning.PackPending(pinned, opts)
		if len(pp.Left) > 0 {
			reasons[z] = fmt.Sprintf("%d of %d pods unplaced (%s)", len(pp.Left), len(pods), lo.Values(pp.Left)[0])
			continue
		}
		if best == nil || pp.Cost < best.Cost-1e-9 {
			best = &Plan{Zone: z, NodeClaims: pp.NodeClaims, Cost: pp.Cost}
		}
	}
	if best == nil {
		parts := lo.Map(zones, func(z string, _ int) string { return z + ": " + reasons[z] })
		return nil, strings.Join(parts, "; "), nil
	}
	return best, "", nil
}

// busyZones are the zones where another request's attempt is in flight.
func (c *Controller) busyZones(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (map[string]bool, error) {
	list := &autoscalingv1.ProvisioningRequestList{}
	if err := c.kube.List(ctx, list); err != nil {
		return nil, err
	}
	busy := map[string]bool{}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == pr.UID || other.Spec.ProvisioningClassName != autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp {
			continue
		}
		if _, inFlight := detailTime(other, DetailStarted); inFlight {
			busy[detail(other, DetailZone)] = true
		}
	}
	return busy, nil
}

// packingOptions are the packer's inputs as the provisioning loop's packer
// reads them (provisioning.Packer.Inputs).
func (c *Controller) packingOptions(ctx context.Context) (packing.Options, error) {
	return c.packing.Inputs(ctx)
}

func zonesOf(opts packing.Options) []string {
	zones := map[string]bool{}
	for _, its := range opts.InstanceTypes {
		for _, it := range its {
			for _, o := range it.Offerings.Available() {
				zones[o.Zone()] = true
			}
		}
	}
	out := lo.Keys(zones)
	sort.Strings(out)
	return out
}

func hasDeadline(pr *autoscalingv1.ProvisioningRequest) bool {
	_, ok, err := validUntil(pr)
	return ok && err == nil
}
