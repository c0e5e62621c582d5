// Package provisioningrequest serves the ProvisioningRequest API
// (autoscaling.x-k8s.io/v1, the API Kueue's provisioning admission check and
// Cluster Autoscaler speak) on Karpenter: all-or-nothing GPU capacity for a
// gang of pods.
//
//   - check-capacity.autoscaling.x-k8s.io: do the request's pods (each
//     PodSet's PodTemplate × count) fit on the nodes that exist or are in
//     flight? Karpenter core's scheduler answers with no NodePool, so nothing
//     is launched.
//   - best-effort-atomic-scale-up.autoscaling.x-k8s.io: the GPU packer plans
//     the cheapest node set that holds every pod, over the NodePools by
//     weight, in one zone; the controller creates every NodeClaim of the plan
//     at once and waits until all of them registered. If one is refused,
//     deleted or not registered within LaunchTimeout, all of them are
//     deleted (core's termination removes their instances), the request says
//     why, and a new attempt follows after a backoff; after MaxAttempts the
//     request is Failed.
//
// Booking: the NodeClaims of a provisioned request carry
// karpenter.sh/do-not-disrupt and the request's label until its pods are
// bound, or until BookingTTL passes (BookingExpired), then the hold is
// released and normal consolidation applies. See designs/gang.md.
package provisioningrequest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/samber/lo"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/runtime"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
)

func init() {
	// The manager's and the test environment's clients use client-go's
	// scheme, as for Karpenter's own types.
	runtime.Must(autoscalingv1.AddToScheme(scheme.Scheme))
}

// Labels and annotations on the NodeClaims launched for a request (NodeClaim
// labels and annotations are copied to the Node when it registers).
const (
	// LabelRequest is the UID of the ProvisioningRequest a NodeClaim was
	// launched for (names are not unique over time, and may be longer than
	// a label value).
	LabelRequest = gpucp.LabelGangRequest
	// LabelAttempt is the launch attempt of the request that created it.
	LabelAttempt = gpucp.LabelGangAttempt
	// AnnotationGangSize is how many NodeClaims the attempt created: with
	// the two labels, it lets a backend launch the attempt's NodeClaims in
	// one all-or-nothing call (the AWS backend: one CreateFleet with
	// MinTargetCapacity).
	AnnotationGangSize = gpucp.AnnotationGangSize
	// AnnotationRequest is the request's namespace/name, for people and for
	// the orphan check.
	AnnotationRequest = v1alpha1.Group + "/provisioning-request"
)

// Keys in status.provisioningClassDetails.
const (
	DetailAttempt    = "attempt"
	DetailStarted    = "attemptStarted"
	DetailNodeClaims = "nodeClaims"
	DetailZone       = "zone"
	DetailCost       = "costPerHour"
	DetailRetryAfter = "retryAfter"
	DetailBooking    = "booking"
)

// Booking states (DetailBooking).
const (
	BookingHeld     = "held"
	BookingConsumed = "released: pods bound"
	BookingExpired  = "released: booking expired"
	BookingRevoked  = "released: capacity revoked"
)

// Defaults.
const (
	DefaultBookingTTL    = 10 * time.Minute
	DefaultLaunchTimeout = 10 * time.Minute
	DefaultMaxAttempts   = 3
	DefaultRetryBackoff  = 30 * time.Second
	MaxRetryBackoff      = 10 * time.Minute
	// pollInterval is how often an in-flight attempt or a held booking is
	// looked at between NodeClaim events (pod binding is not watched).
	pollInterval = 10 * time.Second
	// createGrace: a NodeClaim this controller created less than this long
	// ago and not yet in the informer cache is taken as in flight, not gone.
	createGrace = 15 * time.Second
	// staleRequeue: a reconcile that worked from a stale copy of the
	// request runs again after this at the latest (the newer copy's watch
	// event usually runs it sooner).
	staleRequeue = time.Second
)

// Options configure the controller.
type Options struct {
	Clock         clock.Clock
	KubeClient    client.Client
	CloudProvider karpcp.CloudProvider
	Cluster       *state.Cluster
	Recorder      events.Recorder
	// APIReader, when set, reads around the informer cache (the manager's
	// GetAPIReader): a NodeClaim of an attempt missing from the cache is
	// looked up on the API server, so a NodeClaim core deleted (a refused
	// launch) is known gone at once instead of after the cache grace, and
	// one the cache has not seen yet is not taken for gone.
	APIReader client.Reader
	// BookingTTL: how long capacity found or launched for a request is held
	// for its pods (0 = DefaultBookingTTL).
	BookingTTL time.Duration
	// LaunchTimeout: every NodeClaim of an atomic attempt must register
	// within it, or the whole attempt is rolled back (0 = default).
	LaunchTimeout time.Duration
	// MaxAttempts of an atomic request before it is Failed (0 = default).
	MaxAttempts int
	// RetryBackoff after the first failed attempt, doubled after each
	// further one, capped at MaxRetryBackoff (0 = default).
	RetryBackoff time.Duration
}

// Controller reconciles ProvisioningRequests.
type Controller struct {
	opts    Options
	kube    client.Client
	clock   clock.Clock
	packing *provisioning.Packer
}

// NewController returns the ProvisioningRequest controller.
func NewController(opts Options) *Controller {
	opts.BookingTTL = lo.Ternary(opts.BookingTTL <= 0, DefaultBookingTTL, opts.BookingTTL)
	opts.LaunchTimeout = lo.Ternary(opts.LaunchTimeout <= 0, DefaultLaunchTimeout, opts.LaunchTimeout)
	opts.MaxAttempts = lo.Ternary(opts.MaxAttempts <= 0, DefaultMaxAttempts, opts.MaxAttempts)
	opts.RetryBackoff = lo.Ternary(opts.RetryBackoff <= 0, DefaultRetryBackoff, opts.RetryBackoff)
	opts.Clock = lo.Ternary[clock.Clock](opts.Clock == nil, clock.RealClock{}, opts.Clock)
	return &Controller{opts: opts, kube: opts.KubeClient, clock: opts.Clock,
		packing: provisioning.NewPacker(provisioning.PackerOptions{KubeClient: opts.KubeClient, CloudProvider: opts.CloudProvider, Cluster: opts.Cluster})}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.provisioningrequest" }

// Served reports whether the controller serves a provisioning class.
func Served(class string) bool {
	return class == autoscalingv1.ProvisioningClassCheckCapacity || class == autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp
}

// Reconcile moves a request one step: accept, answer or launch, watch the
// launch, hold and release the booking.
func (c *Controller) Reconcile(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (reconcile.Result, error) {
	if !Served(pr.Spec.ProvisioningClassName) || !pr.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("ProvisioningRequest", client.ObjectKeyFromObject(pr), "class", pr.Spec.ProvisioningClassName))
	stored := pr.DeepCopy()
	res, err := c.step(ctx, pr)
	if errors.Is(err, errNotSynced) {
		res, err = reconcile.Result{RequeueAfter: time.Second}, nil // answer once cluster state caught up
	}
	if apierrors.IsConflict(err) {
		return c.staleCopy(ctx, err)
	}
	if patchErr := c.patchStatus(ctx, stored, pr); patchErr != nil {
		if apierrors.IsConflict(patchErr) {
			return c.staleCopy(ctx, patchErr)
		}
		return reconcile.Result{}, patchErr
	}
	return res, err
}

// staleCopy ends a reconcile whose status write was refused because the
// request changed since the copy it worked from was read (the informer
// cache is behind a write to it, the controller's own or someone else's):
// nothing of it is written; the newer copy's watch event, or this requeue,
// runs it again. Not an error: the cache catches up.
func (c *Controller) staleCopy(ctx context.Context, err error) (reconcile.Result, error) {
	log.FromContext(ctx).V(1).Info("request changed since it was read; reconciling it again", "reason", err.Error())
	return reconcile.Result{RequeueAfter: staleRequeue}, nil
}

func (c *Controller) step(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (reconcile.Result, error) {
	now := metav1.NewTime(c.clock.Now())
	if !isTrue(pr, autoscalingv1.Accepted) {
		setCondition(pr, autoscalingv1.Accepted, metav1.ConditionTrue, ReasonAccepted, MsgAccepted, now)
	}
	if isTrue(pr, autoscalingv1.Failed) && !isTrue(pr, autoscalingv1.Provisioned) {
		// Nothing of a failed request is kept: whatever of it is still
		// around (a NodeClaim the cache had not shown when its attempt
		// was rolled back, one created by an interrupted attempt) is
		// deleted. NodeClaim events requeue the request.
		return reconcile.Result{}, c.sweep(ctx, pr)
	}
	if isTrue(pr, autoscalingv1.Failed) || isTrue(pr, autoscalingv1.BookingExpired) || isTrue(pr, autoscalingv1.CapacityRevoked) {
		return reconcile.Result{}, c.release(ctx, pr, "")
	}
	if isTrue(pr, autoscalingv1.Provisioned) {
		return c.book(ctx, pr)
	}
	pods, err := c.podsFor(ctx, pr)
	if err != nil {
		if msg, ok := isPodsError(err); ok {
			setCondition(pr, autoscalingv1.Failed, metav1.ConditionTrue, ReasonFailedToCreatePods, msg, now)
			setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonFailedToCreatePods, msg, now)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if pr.Spec.ProvisioningClassName == autoscalingv1.ProvisioningClassCheckCapacity {
		return c.checkCapacity(ctx, pr, pods)
	}
	deadline, ok, err := validUntil(pr)
	if err != nil {
		setCondition(pr, autoscalingv1.Failed, metav1.ConditionTrue, ReasonInvalidParameter, err.Error(), now)
		setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonInvalidParameter, err.Error(), now)
		return reconcile.Result{}, c.sweep(ctx, pr)
	}
	if !ok {
		return c.atomic(ctx, pr, pods)
	}
	if !now.Time.Before(deadline) {
		return c.validUntilPassed(ctx, pr)
	}
	res, err := c.atomic(ctx, pr, pods)
	if left := deadline.Sub(c.clock.Now()); err == nil && !isTrue(pr, autoscalingv1.Provisioned) && !isTrue(pr, autoscalingv1.Failed) && (res.RequeueAfter <= 0 || res.RequeueAfter > left) {
		res.RequeueAfter = max(left, time.Millisecond) // wake at the deadline
	}
	return res, err
}

// ParamValidUntilSeconds is the request parameter (Cluster Autoscaler's):
// how long after the request's creation it may keep trying. With it, an
// atomic request retries until then instead of stopping after MaxAttempts.
const ParamValidUntilSeconds = "ValidUntilSeconds"

// validUntil is the request's deadline, if it has one.
func validUntil(pr *autoscalingv1.ProvisioningRequest) (time.Time, bool, error) {
	v, ok := pr.Spec.Parameters[ParamValidUntilSeconds]
	if !ok {
		return time.Time{}, false, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 1 {
		return time.Time{}, false, fmt.Errorf("parameter %s is %q; it must be a whole number of seconds above 0", ParamValidUntilSeconds, string(v))
	}
	return pr.CreationTimestamp.Add(time.Duration(n) * time.Second), true, nil
}

// validUntilPassed fails a request whose deadline passed before it was
// provisioned, rolling back an attempt in flight.
func (c *Controller) validUntilPassed(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (reconcile.Result, error) {
	if _, err := c.deleteNodeClaims(ctx, pr, lo.Compact(strings.Split(detail(pr, DetailNodeClaims), ","))); err != nil {
		return reconcile.Result{}, err
	}
	setDetail(pr, DetailStarted, "")
	setDetail(pr, DetailNodeClaims, "")
	setDetail(pr, DetailRetryAfter, "")
	now := metav1.NewTime(c.clock.Now())
	msg := fmt.Sprintf("Capacity is not found: %s (%s) passed after %d attempts; everything launched for it was deleted",
		ParamValidUntilSeconds, string(pr.Spec.Parameters[ParamValidUntilSeconds]), detailInt(pr, DetailAttempt))
	setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonCapacityIsNotFound, msg, now)
	setCondition(pr, autoscalingv1.Failed, metav1.ConditionTrue, ReasonCapacityIsNotFound, msg, now)
	return reconcile.Result{}, nil
}

// checkCapacity answers whether the pods fit on existing and in-flight
// nodes, launching nothing. A negative answer is retried, as Cluster
// Autoscaler retries it.
func (c *Controller) checkCapacity(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, pods podList) (reconcile.Result, error) {
	placed, err := c.placeOnExisting(ctx, pr, pods.all)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := metav1.NewTime(c.clock.Now())
	if placed == len(pods.all) {
		setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionTrue, ReasonCapacityIsFound, MsgCapacityIsFound, now)
		setDetail(pr, DetailBooking, BookingHeld)
		return reconcile.Result{RequeueAfter: c.opts.BookingTTL}, nil
	}
	setCondition(pr, autoscalingv1.Provisioned, metav1.ConditionFalse, ReasonCapacityIsNotFound,
		fmt.Sprintf("Capacity is not found: %d of %d pods fit on existing nodes; karpenter-gpu will check again", placed, len(pods.all)), now)
	return reconcile.Result{RequeueAfter: c.opts.RetryBackoff}, nil
}

// Register wires the controller into a manager. NodeClaim events of a
// request's nodes requeue the request; a second reconciler over those
// NodeClaims handles the ones whose request is gone (ReconcileNodeClaim).
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	if err := controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()+".orphans").
		For(&karpv1.NodeClaim{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[LabelRequest] != "" }))).
		// A deleted request changes none of its NodeClaims: its deletion
		// enqueues them.
		Watches(&autoscalingv1.ProvisioningRequest{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			reqs, err := NodeClaimsOfRequest(ctx, m.GetClient(), o.GetUID())
			if err != nil {
				log.FromContext(ctx).Error(err, "listing the NodeClaims of a deleted ProvisioningRequest", "ProvisioningRequest", client.ObjectKeyFromObject(o))
				return nil
			}
			return reqs
		}), builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false }, UpdateFunc: func(event.UpdateEvent) bool { return false },
			DeleteFunc: func(event.DeleteEvent) bool { return true }, GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Complete(reconcile.AsReconciler(m.GetClient(), reconcile.ObjectReconciler[*karpv1.NodeClaim](reconcilerFunc[*karpv1.NodeClaim](c.ReconcileNodeClaim)))); err != nil {
		return err
	}
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		For(&autoscalingv1.ProvisioningRequest{}).
		Watches(&karpv1.NodeClaim{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			key, ok := RequestKey(o)
			if !ok {
				return nil
			}
			return []reconcile.Request{{NamespacedName: key}}
		})).
		Complete(reconcile.AsReconciler(m.GetClient(), c))
}

// RequestKey is the ProvisioningRequest a NodeClaim (or Node) was launched
// for: its AnnotationRequest (namespace/name) when it also carries
// LabelRequest; false otherwise. It is the controller's NodeClaim watch
// mapping (Register), the orphan reconciler's lookup, and the simulator's
// routing of NodeClaim changes.
func RequestKey(o client.Object) (client.ObjectKey, bool) {
	ns, name, ok := strings.Cut(o.GetAnnotations()[AnnotationRequest], "/")
	if !ok || o.GetLabels()[LabelRequest] == "" {
		return client.ObjectKey{}, false
	}
	return client.ObjectKey{Namespace: ns, Name: name}, true
}

// NodeClaimsOfRequest is the orphan reconciler's watch mapping for a deleted
// ProvisioningRequest (Register; the simulator's too): the NodeClaims
// labelled with its UID (LabelRequest). opts are added to the List (a
// caller that only reads the result may pass client.UnsafeDisableDeepCopy).
func NodeClaimsOfRequest(ctx context.Context, kubeClient client.Client, uid types.UID, opts ...client.ListOption) ([]reconcile.Request, error) {
	list := &karpv1.NodeClaimList{}
	if err := kubeClient.List(ctx, list, append([]client.ListOption{client.MatchingLabels{LabelRequest: string(uid)}}, opts...)...); err != nil {
		return nil, err
	}
	return lo.Map(list.Items, func(nc karpv1.NodeClaim, _ int) reconcile.Request {
		return reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&nc)}
	}), nil
}

// patchStatus writes the status a reconcile arrived at, only over the
// version of the request it worked from: stored, or the version it wrote
// itself on the way (the attempt's record, atomic; locking on stored would
// refuse every launch's own patch). The informer cache can hand the
// controller a copy older than the request on the API server (written a
// moment ago by someone else, or by the controller, whose NodeClaim events
// requeue the request before the watch delivered its write). An unlocked
// merge patch from such a copy wrote over the newer status: after the
// attempt's record was refused (conflict), the attempt was recorded anyway
// with no NodeClaims, and failed 15 s later without reaching the fleet; a
// second rollback was written over the first. The lock refuses such a
// patch with a conflict instead (Reconcile: staleCopy).
func (c *Controller) patchStatus(ctx context.Context, stored, pr *autoscalingv1.ProvisioningRequest) error {
	if equalStatus(stored, pr) {
		return nil
	}
	base := stored.DeepCopy()
	base.ResourceVersion = pr.ResourceVersion
	if err := c.kube.Status().Patch(ctx, pr, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

func equalStatus(a, b *autoscalingv1.ProvisioningRequest) bool {
	if len(a.Status.ProvisioningClassDetails) != len(b.Status.ProvisioningClassDetails) || len(a.Status.Conditions) != len(b.Status.Conditions) {
		return false
	}
	for k, v := range a.Status.ProvisioningClassDetails {
		if b.Status.ProvisioningClassDetails[k] != v {
			return false
		}
	}
	for i := range a.Status.Conditions {
		x, y := a.Status.Conditions[i], b.Status.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message || !x.LastTransitionTime.Equal(&y.LastTransitionTime) {
			return false
		}
	}
	return true
}

type reconcilerFunc[T client.Object] func(context.Context, T) (reconcile.Result, error)

func (f reconcilerFunc[T]) Reconcile(ctx context.Context, o T) (reconcile.Result, error) {
	return f(ctx, o)
}

func detail(pr *autoscalingv1.ProvisioningRequest, key string) string {
	return string(pr.Status.ProvisioningClassDetails[key])
}

func setDetail(pr *autoscalingv1.ProvisioningRequest, key, value string) {
	if pr.Status.ProvisioningClassDetails == nil {
		pr.Status.ProvisioningClassDetails = map[string]autoscalingv1.Detail{}
	}
	if value == "" {
		delete(pr.Status.ProvisioningClassDetails, key)
		return
	}
	pr.Status.ProvisioningClassDetails[key] = autoscalingv1.Detail(value)
}

func detailTime(pr *autoscalingv1.ProvisioningRequest, key string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, detail(pr, key))
	return t, err == nil
}

func detailInt(pr *autoscalingv1.ProvisioningRequest, key string) int {
	n, _ := strconv.Atoi(detail(pr, key))
	return n
}
