// Package nomination tells kube-scheduler where Karpenter planned each
// pending pod. Karpenter sizes a new node for the pods it planned on it,
// but kube-scheduler knows nothing of that plan: when the node turns Ready
// it binds whichever pending pod scores best there, so a burst of pods
// lands on nodes launched for other pods, a pod that needed the big node
// finds it taken, and Karpenter launches again for it. The nodes end up
// mis-sized for the pods they hold, which is what over-time consolidation
// then pays to undo.
//
// KEP-5278 (kube-scheduler v1.35+, feature gate
// NominatedNodeNameForExpectation, beta) makes status.nominatedNodeName
// the place for such a plan: a component may set it on a pending pod when
// it is unset; kube-scheduler tries that node first, and its nominator
// holds the pod's requests on the node against every pod of equal or lower
// priority. Karpenter v1.15 never sets it. This controller does, once the
// NodeClaim Karpenter planned the pod on has a node name; sets it again if
// kube-scheduler clears it while the node is still starting (v1.36 still
// clears it after a failed cycle, see Reconcile); and clears what it set
// when the plan is gone. It never overwrites a nomination someone else
// made.
package nomination

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// NominationsTotal counts the nominatedNodeName writes, by action (set,
// cleared).
var NominationsTotal = metrics.NewCounterVec("nomination", "writes_total", "status.nominatedNodeName writes on pending pods: set to the node Karpenter planned the pod on, or cleared when that plan is gone.", metrics.LabelAction)

// Options are NewController's inputs.
type Options struct {
	KubeClient client.Client
	// Cluster is core's cluster state, whose provisioning decisions map
	// each pending pod to the NodeClaim it was planned on.
	Cluster *state.Cluster
}

// Controller reconciles pending pods.
type Controller struct {
	kube    client.Client
	cluster *state.Cluster

	mu sync.Mutex
	// planned is the NodeClaim each pending pod was first planned on;
	// nominated the node name this controller wrote on the pod.
	planned   map[types.NamespacedName]string
	nominated map[types.NamespacedName]nominee
}

// nominee is a nomination this controller wrote: the node and the pod's
// requests, which it holds there.
type nominee struct {
	node     string
	requests corev1.ResourceList
}

// NewController returns the nomination controller.
func NewController(o Options) *Controller {
	return &Controller{kube: o.KubeClient, cluster: o.Cluster, planned: map[types.NamespacedName]string{}, nominated: map[types.NamespacedName]nominee{}}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.nomination" }

// Register wires the controller into a manager: pending pods, and the pods
// planned on a NodeClaim when it changes (it gets its node name when the
// node registers).
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(c.Name()).
		For(&corev1.Pod{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(e event.CreateEvent) bool { return pending(e.Object) },
			// Bound since: reconciled once more, to forget it.
			UpdateFunc:  func(e event.UpdateEvent) bool { return pending(e.ObjectOld) },
			DeleteFunc:  func(e event.DeleteEvent) bool { return pending(e.Object) },
			GenericFunc: func(e event.GenericEvent) bool { return pending(e.Object) },
		})).
		Watches(&karpv1.NodeClaim{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			var out []reconcile.Request
			for _, k := range c.PodsFor(o.GetName()) {
				out = append(out, reconcile.Request{NamespacedName: k})
			}
			return out
		})).
		Complete(c)
}

func pending(o client.Object) bool {
	p, ok := o.(*corev1.Pod)
	return ok && p.Spec.NodeName == ""
}

// PodsFor lists the pending pods planned on the NodeClaim: the ones to
// reconcile when it changes.
func (c *Controller) PodsFor(nodeClaim string) []types.NamespacedName {
	keys := c.cluster.PodsMappedToNodeClaim(nodeClaim)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, nc := range c.planned {
		if nc == nodeClaim {
			keys = append(keys, k)
		}
	}
	return keys
}

// Reconcile nominates one pending pod to the node of the NodeClaim it was
// planned on, or clears the nomination it made when that plan is gone.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.NamespacedName
	pod := &corev1.Pod{}
	if err := c.kube.Get(ctx, key, pod); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if pod.Spec.NodeName != "" || !pod.DeletionTimestamp.IsZero() || podutils.IsTerminal(pod) {
		c.forget(key)
		return reconcile.Result{}, nil
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	node, starting, err := c.plannedNode(ctx, pod, requests)
	if err != nil {
		return reconcile.Result{}, err
	}
	c.mu.Lock()
	ours := c.nominated[key].node
	c.mu.Unlock()
	current := pod.Status.NominatedNodeName
	switch {
	case current == node:
		return reconcile.Result{}, nil
	case current != "" && current != ours:
		// Someone else's nomination (kube-scheduler's preemption, a
		// queue manager): KEP-5278 leaves it to them.
		return reconcile.Result{}, nil
	case node == "" && current == "":
		return reconcile.Result{}, nil
	case current == "" && ours == node && !starting:
		// Cleared since it was set, and the node is up: kube-scheduler
		// had its chance there and chose otherwise. Left as it is.
		return reconcile.Result{}, nil
	}
	// Also reached when kube-scheduler cleared it while the node is still
	// starting: v1.36 clears an external nomination after any failed
	// cycle whose preemption finds no victims (preemption.go Evaluator.
	// Preempt), which is every cycle that ran before the node could take
	// the pod. Setting it again does not requeue the pod (a status-only
	// update: scheduling_queue.go isPodUpdated), so the two never loop.

	stored := pod.DeepCopy()
	pod.Status.NominatedNodeName = node
	// The lock refuses the write if kube-scheduler changed the pod since
	// it was read (KEP-5278: external writers must not race it).
	if err := c.kube.Status().Patch(ctx, pod, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{Requeue: true}, nil
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	c.mu.Lock()
	if node == "" {
		delete(c.nominated, key)
		NominationsTotal.WithLabelValues("cleared").Inc()
	} else {
		c.nominated[key] = nominee{node: node, requests: requests}
		NominationsTotal.WithLabelValues("set").Inc()
	}
	c.mu.Unlock()
	return reconcile.Result{}, nil
}

// plannedNode is the node name of the NodeClaim the pod is planned on ("" if
// none, not registered yet, or no room left there), and whether that
// NodeClaim is still starting (not Initialized: kube-scheduler cannot bind
// there yet). A pod keeps the NodeClaim it was first planned on while that
// exists: Karpenter's provisioning runs again while pods wait for their
// nodes and re-places them first fit on the NodeClaims in flight, which can
// differ from the plan the nodes were launched for. It moves to a NodeClaim
// created later (Karpenter launched again for it). The pods nominated to a
// node must fit it together: kube-scheduler holds every nominated pod's
// share against the others of equal or lower priority, so two pods that do
// not fit together there would each find the node full and neither would
// bind. Plans of different provisioning runs can overlap that way (a pod
// kept on its first NodeClaim, another placed there by a later run that
// moved the first one elsewhere); the later run's placement is then tried,
// and without room on either the pod is not nominated.
func (c *Controller) plannedNode(ctx context.Context, pod *corev1.Pod, requests corev1.ResourceList) (string, bool, error) {
	key := client.ObjectKeyFromObject(pod)
	c.mu.Lock()
	pinned := c.planned[key]
	c.mu.Unlock()
	get := func(name string) (*karpv1.NodeClaim, error) {
		nc := &karpv1.NodeClaim{}
		if err := c.kube.Get(ctx, types.NamespacedName{Name: name}, nc); err != nil {
			return nil, client.IgnoreNotFound(err)
		}
		if !nc.DeletionTimestamp.IsZero() || repackReplacementInFlight(nc) {
			return nil, nil
		}
		return nc, nil
	}
	var candidates []*karpv1.NodeClaim
	if pinned != "" {
		nc, err := get(pinned)
		if err != nil {
			return "", false, err
		}
		if nc != nil {
			candidates = append(candidates, nc)
		}
	}
	if current := c.cluster.PodNodeClaimMapping(key); current != "" && current != pinned {
		nc, err := get(current)
		if err != nil {
			return "", false, err
		}
		if nc != nil {
			if len(candidates) > 0 && candidates[0].CreationTimestamp.Before(&nc.CreationTimestamp) {
				candidates = []*karpv1.NodeClaim{nc, candidates[0]}
			} else {
				candidates = append(candidates, nc)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(candidates) == 0 {
		delete(c.planned, key)
		return "", false, nil
	}
	c.planned[key] = candidates[0].Name
	for _, nc := range candidates {
		if nc.Status.NodeName == "" {
			// Not registered: nothing to nominate to yet, and no other
			// candidate is taken in its place.
			return "", false, nil
		}
		if c.fitsLocked(key, nc, requests) {
			c.planned[key] = nc.Name
			return nc.Status.NodeName, !nc.StatusConditions().Get(karpv1.ConditionTypeInitialized).IsTrue(), nil
		}
	}
	return "", false, nil
}

// repackReplacementInFlight reports whether the NodeClaim is a repack
// replacement whose move has not completed (pkg/controllers/repack): its
// room is for the pods of the nodes it replaces, which are evicted once it
// is up. Karpenter's provisioning sees it as free capacity in flight and
// may place other pending pods there; nominating them would hold that room
// against the moved pods, which then need new nodes.
func repackReplacementInFlight(nc *karpv1.NodeClaim) bool {
	return nc.Annotations[v1alpha1.AnnotationRepackOf] != "" && nc.Annotations[v1alpha1.AnnotationRepackCompletedAt] == ""
}

// fitsLocked reports whether the pod's requests fit the NodeClaim's
// allocatable beside those of the other pods this controller nominated to
// its node (core's resources.Fits: a resource the node lacks does not fit).
func (c *Controller) fitsLocked(key types.NamespacedName, nc *karpv1.NodeClaim, requests corev1.ResourceList) bool {
	held := []corev1.ResourceList{requests, {corev1.ResourcePods: resource.MustParse("1")}}
	for k, n := range c.nominated {
		if k != key && n.node == nc.Status.NodeName {
			held = append(held, n.requests, corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")})
		}
	}
	return resources.Fits(resources.Merge(held...), nc.Status.Allocatable)
}

func (c *Controller) forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.planned, key)
	delete(c.nominated, key)
}
