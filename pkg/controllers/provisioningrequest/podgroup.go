package provisioningrequest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/karpenter/pkg/events"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Pod groups without Kueue: pods that carry LabelPodGroup (the group's name,
// unique in its namespace), KeyPodGroupMinMembers (label or annotation: how
// many members must run together) and the scheduling gate
// SchedulingGatePodGroup are provisioned all-or-nothing through the same
// ProvisioningRequest path Kueue uses. The gate keeps kube-scheduler and
// Karpenter's provisioner away from the pods (a gated pod is not
// provisionable) until the gang's capacity is there:
//
//  1. once at least min-members pods of the group exist (gated pods plus
//     members already bound), the controller writes a PodTemplate per
//     distinct pod shape and a best-effort-atomic-scale-up
//     ProvisioningRequest for the gated pods, labelled with the group;
//  2. when the request is Provisioned, the gated pods (at most as many as
//     the request counts) are annotated as consuming it, as Kueue annotates
//     its pods (so the booking is released once they are bound), get the
//     toleration of its nodes' booking taint (TaintBooked: no other pod
//     can use them until the booking is released), and their gate is
//     removed: kube-scheduler binds them to the capacity launched for them;
//  3. when the request is Failed (its attempts used up), after a backoff
//     (RetryBackoff doubling per retry, up to MaxRetryBackoff) a new one
//     is made, as Kueue retries, and then the failed one is deleted with
//     its PodTemplates; the pods stay gated meanwhile, so nothing of the
//     gang runs. The group's requests are read past the informer cache
//     (PodGroupOptions.APIReader), so a retry is never numbered twice;
//  4. members that arrive after a request's booking is over (its pods
//     bound) get a new request of their own;
//  5. when no pod of the group is left, its requests and PodTemplates are
//     deleted.
//
// A pod with the label but without the gate is provisioned as any pending
// pod (node by node): scheduling gates can only be set when a pod is
// created, so the workload must create its pods gated (a Job's or JobSet's
// pod template can).
const (
	LabelPodGroup          = v1alpha1.Group + "/pod-group"
	KeyPodGroupMinMembers  = v1alpha1.Group + "/pod-group-min-members"
	SchedulingGatePodGroup = v1alpha1.Group + "/pod-group"
	// AnnotationPodGroupRetry on a request is how many requests of the
	// group came before it (failed ones, or provisioned ones whose booking
	// is over when later members arrive).
	AnnotationPodGroupRetry = v1alpha1.Group + "/pod-group-retry"
	// MaxPodSets is the API's limit on a request's PodSets.
	MaxPodSets = 32
)

// PodGroupOptions configure the pod-group controller.
type PodGroupOptions struct {
	Clock      clock.Clock
	KubeClient client.Client
	// APIReader reads a group's requests past the informer cache (the
	// manager's API reader; nil = KubeClient). The retry number of the next
	// request is one more than the highest the group has: read from a cache
	// that has seen a failed request's deletion but not its successor's
	// creation, it would start again at 0 and the group would hold two
	// requests at once.
	APIReader client.Reader
	// Recorder publishes why a group is not provisioned as Warning events
	// on its pods (NotProvisionedReason).
	Recorder events.Recorder
	// RetryBackoff before a failed request of a group is replaced (doubling
	// per retry, up to MaxRetryBackoff; 0 = DefaultRetryBackoff).
	RetryBackoff time.Duration
}

// PodGroupController turns gated pod groups into ProvisioningRequests and
// ungates their pods once the capacity is provisioned.
type PodGroupController struct {
	opts     PodGroupOptions
	kube     client.Client
	requests client.Reader
	recorder events.Recorder
}

// NewPodGroupController returns the pod-group controller.
func NewPodGroupController(opts PodGroupOptions) *PodGroupController {
	opts.RetryBackoff = lo.Ternary(opts.RetryBackoff <= 0, DefaultRetryBackoff, opts.RetryBackoff)
	opts.Clock = lo.Ternary[clock.Clock](opts.Clock == nil, clock.RealClock{}, opts.Clock)
	requests := lo.Ternary[client.Reader](opts.APIReader == nil, opts.KubeClient, opts.APIReader)
	return &PodGroupController{opts: opts, kube: opts.KubeClient, requests: requests, recorder: opts.Recorder}
}

// Name is the controller's name.
func (c *PodGroupController) Name() string { return "karpenter-gpu.podgroup" }

// GroupKey is the request key of an object's pod group (namespace and group
// name), or false when it belongs to none.
func GroupKey(o client.Object) (types.NamespacedName, bool) {
	g := o.GetLabels()[LabelPodGroup]
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: g}, g != ""
}

// Register wires the controller into a manager: pod and request events of a
// group enqueue the group.
func (c *PodGroupController) Register(_ context.Context, m manager.Manager) error {
	toGroup := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if key, ok := GroupKey(o); ok {
			return []reconcile.Request{{NamespacedName: key}}
		}
		return nil
	})
	inGroup := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { _, ok := GroupKey(o); return ok }))
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		Watches(&corev1.Pod{}, toGroup, inGroup).
		Watches(&autoscalingv1.ProvisioningRequest{}, toGroup, inGroup).
		Complete(c)
}

// Reconcile moves one pod group (request key: namespace and group name) a
// step.
func (c *PodGroupController) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns, group := req.Namespace, req.Name
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("podGroup", ns+"/"+group))
	podList := &corev1.PodList{}
	if err := c.kube.List(ctx, podList, client.InNamespace(ns), client.MatchingLabels{LabelPodGroup: group}); err != nil {
		return reconcile.Result{}, err
	}
	pods := lo.Filter(podList.Items, func(p corev1.Pod, _ int) bool { return p.DeletionTimestamp.IsZero() && !podutils.IsTerminal(&p) })
	reqList := &autoscalingv1.ProvisioningRequestList{}
	if err := c.requests.List(ctx, reqList, client.InNamespace(ns), client.MatchingLabels{LabelPodGroup: group}); err != nil {
		return reconcile.Result{}, err
	}
	reqs := lo.Filter(reqList.Items, func(r autoscalingv1.ProvisioningRequest, _ int) bool { return r.DeletionTimestamp.IsZero() })
	if len(pods) == 0 {
		for i := range reqs {
			if err := c.deleteRequest(ctx, &reqs[i]); err != nil {
				return reconcile.Result{}, err
			}
		}
		return reconcile.Result{}, nil
	}
	minMembers, err := MinMembers(pods)
	if err != nil {
		// The pods stay gated: say why on every reconcile of the group.
		c.notProvisioned(ctx, pods, err)
		return reconcile.Result{}, nil
	}
	gated := lo.Filter(pods, func(p corev1.Pod, _ int) bool { return p.Spec.NodeName == "" && hasGate(&p) })
	sort.Slice(gated, func(i, j int) bool { return gated[i].Name < gated[j].Name })
	bound := lo.CountBy(pods, func(p corev1.Pod) bool { return p.Spec.NodeName != "" })
	retry := 0
	if len(reqs) > 0 {
		sort.Slice(reqs, func(i, j int) bool { return retryOf(&reqs[i]) < retryOf(&reqs[j]) })
		cur := &reqs[len(reqs)-1]
		retry = retryOf(cur) + 1
		// A failed request with a successor is over (its successor was
		// created before it was deleted, and the delete did not happen).
		for i := range reqs[:len(reqs)-1] {
			if isTrue(&reqs[i], autoscalingv1.Failed) {
				if err := c.deleteRequest(ctx, &reqs[i]); err != nil {
					return reconcile.Result{}, err
				}
			}
		}
		switch {
		case isTrue(cur, autoscalingv1.Provisioned):
			if detail(cur, DetailBooking) == BookingHeld {
				return reconcile.Result{}, c.ungate(ctx, cur, gated)
			}
			// The booking is over (its pods were ungated when it was
			// provisioned): pods still gated are members that came later,
			// and get a request of their own (below).
		case isTrue(cur, autoscalingv1.Failed):
			failed := meta.FindStatusCondition(cur.Status.Conditions, autoscalingv1.Failed)
			if wait := failed.LastTransitionTime.Add(Backoff(c.opts.RetryBackoff, retryOf(cur)+1)).Sub(c.opts.Clock.Now()); wait > 0 {
				return reconcile.Result{RequeueAfter: wait}, nil
			}
			// The successor first, then the failed request: whatever
			// happens between the two, the group's highest retry number
			// stays on record.
			if len(gated) > 0 && len(gated)+bound >= minMembers {
				if err := c.createRequest(ctx, ns, group, retry, gated); err != nil {
					return reconcile.Result{}, err
				}
			}
			return reconcile.Result{}, c.deleteRequest(ctx, cur)
		default:
			return reconcile.Result{}, nil // in progress: request events requeue the group
		}
	}
	if len(gated) == 0 || len(gated)+bound < minMembers {
		return reconcile.Result{}, nil // waiting for members: pod events requeue the group
	}
	return reconcile.Result{}, c.createRequest(ctx, ns, group, retry, gated)
}

// MinMembers reads the group's minimum member count from its pods (label
// or annotation KeyPodGroupMinMembers); every pod stating one must state
// the same.
func MinMembers(pods []corev1.Pod) (int, error) {
	n := 0
	for i := range pods {
		p := &pods[i]
		v, ok := p.Labels[KeyPodGroupMinMembers]
		if !ok {
			v, ok = p.Annotations[KeyPodGroupMinMembers]
		}
		if !ok {
			continue
		}
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > MaxPods {
			return 0, fmt.Errorf("pod %s/%s: %s is %q; it must be a whole number from 1 to %d", p.Namespace, p.Name, KeyPodGroupMinMembers, v, MaxPods)
		}
		if n != 0 && m != n {
			return 0, fmt.Errorf("pod %s/%s: %s is %d but other pods of the group say %d", p.Namespace, p.Name, KeyPodGroupMinMembers, m, n)
		}
		n = m
	}
	if n == 0 {
		return 0, fmt.Errorf("no pod of the group carries %s (label or annotation)", KeyPodGroupMinMembers)
	}
	return n, nil
}

func hasGate(p *corev1.Pod) bool {
	return lo.ContainsBy(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == SchedulingGatePodGroup })
}

func retryOf(r *autoscalingv1.ProvisioningRequest) int {
	n, _ := strconv.Atoi(r.Annotations[AnnotationPodGroupRetry])
	return n
}

func total(r *autoscalingv1.ProvisioningRequest) int {
	return lo.SumBy(r.Spec.PodSets, func(ps autoscalingv1.PodSet) int { return int(ps.Count) })
}

// RequestName is the name of a group's request after retry earlier ones.
func RequestName(group string, retry int) string {
	return fmt.Sprintf("pod-group-%s-%d", group, retry)
}

// createRequest writes a PodTemplate per distinct pod shape, then the
// request (the controller reads the templates when it sees the request).
func (c *PodGroupController) createRequest(ctx context.Context, ns, group string, retry int, gated []corev1.Pod) error {
	name := RequestName(group, retry)
	type set struct {
		tmpl  corev1.PodTemplateSpec
		count int32
	}
	var sets []*set
	byKey := map[string]*set{}
	for i := range gated {
		t := templateOf(&gated[i])
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		k := hex.EncodeToString(h[:])
		if s, ok := byKey[k]; ok {
			s.count++
			continue
		}
		s := &set{tmpl: t, count: 1}
		byKey[k] = s
		sets = append(sets, s)
	}
	if len(sets) > MaxPodSets {
		c.notProvisioned(ctx, gated, fmt.Errorf("%d distinct pod shapes; a ProvisioningRequest holds at most %d PodSets", len(sets), MaxPodSets))
		return nil
	}
	labels := map[string]string{LabelPodGroup: group}
	pr := &autoscalingv1.ProvisioningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: map[string]string{AnnotationPodGroupRetry: strconv.Itoa(retry)}},
		Spec:       autoscalingv1.ProvisioningRequestSpec{ProvisioningClassName: autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp},
	}
	for i, s := range sets {
		t := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Namespace: ns, Labels: labels}, Template: s.tmpl}
		if err := c.kube.Create(ctx, t); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating PodTemplate %s/%s, %w", ns, t.Name, err)
		}
		pr.Spec.PodSets = append(pr.Spec.PodSets, autoscalingv1.PodSet{PodTemplateRef: autoscalingv1.Reference{Name: t.Name}, Count: s.count})
	}
	if err := c.kube.Create(ctx, pr); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ProvisioningRequest %s/%s, %w", ns, name, err)
	}
	log.FromContext(ctx).Info("requested all-or-nothing capacity for pod group", "ProvisioningRequest", name, "pods", len(gated), "podSets", len(sets), "retry", retry)
	return nil
}

// NotProvisionedReason is the reason of the Warning event on a group's
// pods when the group cannot be turned into a ProvisioningRequest (its
// minimum member count is missing or disagrees, or it has more pod shapes
// than MaxPodSets); the message says which.
const NotProvisionedReason = "PodGroupNotProvisioned"

// notProvisioned says why a group's pods stay gated: in the log and as a
// Warning event on each of pods (core's recorder drops a repeat of the
// same pod and message within its dedupe window).
func (c *PodGroupController) notProvisioned(ctx context.Context, pods []corev1.Pod, err error) {
	log.FromContext(ctx).Error(err, "pod group not provisioned")
	for i := range pods {
		c.recorder.Publish(events.Event{InvolvedObject: &pods[i], Type: corev1.EventTypeWarning, Reason: NotProvisionedReason,
			Message: "Pod group not provisioned: " + err.Error(), DedupeValues: []string{string(pods[i].UID), err.Error()}})
	}
}

// templateOf is a pod's template: its labels and spec without what binds it
// (node name) or holds it back (gates).
func templateOf(p *corev1.Pod) corev1.PodTemplateSpec {
	spec := p.Spec.DeepCopy()
	spec.NodeName = ""
	spec.SchedulingGates = nil
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: p.Labels}, Spec: *spec}
}

// ungate lets the provisioned request's pods (at most as many as it counts)
// be scheduled: they are annotated as consuming the request and their gate
// is removed.
func (c *PodGroupController) ungate(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, gated []corev1.Pod) error {
	n := total(pr)
	for i := range gated {
		if i >= n {
			break
		}
		p := &gated[i]
		stored := p.DeepCopy()
		p.Annotations = lo.Assign(p.Annotations, map[string]string{
			autoscalingv1.ProvisioningRequestPodAnnotationKey: pr.Name,
			autoscalingv1.ProvisioningClassPodAnnotationKey:   pr.Spec.ProvisioningClassName,
		})
		p.Spec.SchedulingGates = lo.Reject(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate, _ int) bool { return g.Name == SchedulingGatePodGroup })
		// The request's nodes are booked for these pods (TaintBooked); a
		// pod may gain tolerations while it is pending.
		if tol := BookingToleration(string(pr.UID)); !lo.Contains(p.Spec.Tolerations, tol) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, tol)
		}
		if err := c.kube.Patch(ctx, p, client.MergeFrom(stored)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("ungating pod %s/%s, %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

// deleteRequest deletes a request and its PodTemplates. The controller's
// orphan handling deletes NodeClaims of the request still in flight and
// releases registered ones.
func (c *PodGroupController) deleteRequest(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) error {
	for _, ps := range pr.Spec.PodSets {
		t := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: pr.Namespace, Name: ps.PodTemplateRef.Name}}
		if err := c.kube.Delete(ctx, t); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return client.IgnoreNotFound(c.kube.Delete(ctx, pr))
}
