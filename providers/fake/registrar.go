package fake

import (
	"context"
	"fmt"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// RegistrarOptions configure a Registrar.
type RegistrarOptions struct {
	KubeClient client.Client
	Fleet      *Fleet
	Clock      clock.Clock
	// RegistrationDelay is how long after its instance is running a node
	// registers: OS boot, kubelet TLS bootstrap, GPU driver and device
	// plugin start. GPU nodes take minutes.
	RegistrationDelay time.Duration
	// PodStartDelay is how long a pod bound to a registered node takes to
	// become Running (image pull, container start).
	PodStartDelay time.Duration
	// StatusInterval, when positive, is how often a registered node's
	// instance is checked, as a kubelet posts node status: a node whose
	// instance was terminated underneath it (spot interruption) turns
	// NotReady within it. Zero checks only on NodeClaim events.
	StatusInterval time.Duration
}

// Registrar is a kwok-like kubelet for the fake fleet. For a NodeClaim
// launched on the fleet whose instance has been running for
// RegistrationDelay it creates the Node the kubelet of that instance would
// register: named after the NodeClaim, with its provider ID, its labels, its
// status capacity and allocatable (so nvidia.com/gpu is advertised from the
// start: the device plugin is part of the boot the delay models), Ready, and
// tainted karpenter.sh/unregistered:NoExecute plus the NodeClaim's taints, as
// Karpenter's bootstrap configures a real kubelet. Karpenter core's
// NodeClaim lifecycle then registers and initializes the node. Startup taints
// are not set: the agents that would remove them are assumed to have run
// during the registration delay.
//
// It also plays the kubelet's part for pods: a pod bound to one of its nodes
// becomes Running after PodStartDelay, and when an instance is terminated
// under a node (a spot interruption) the node's Ready condition turns
// Unknown, as when a kubelet stops posting status.
//
// The simulator calls Reconcile and ReconcilePod directly on its fake clock;
// end-to-end tests run it as two controllers with Register.
type Registrar struct {
	opts RegistrarOptions
	clk  clock.Clock
}

// NewRegistrar returns a Registrar.
func NewRegistrar(opts RegistrarOptions) *Registrar {
	return &Registrar{opts: opts, clk: lo.Ternary[clock.Clock](opts.Clock == nil, clock.RealClock{}, opts.Clock)}
}

// Name is the controller's name.
func (r *Registrar) Name() string { return "fake.registrar" }

// RegistrationTime is when the Node of an instance registers: launch, plus
// the fleet's launch latency (pending → running), plus RegistrationDelay.
func (r *Registrar) RegistrationTime(inst *cloudprovider.Instance) time.Time {
	r.opts.Fleet.mu.Lock()
	defer r.opts.Fleet.mu.Unlock()
	return r.opts.Fleet.runningAt(inst).Add(r.opts.RegistrationDelay)
}

// Reconcile creates the Node of a launched NodeClaim when it is due, and
// returns when to look again otherwise.
func (r *Registrar) Reconcile(ctx context.Context, nc *karpv1.NodeClaim) (reconcile.Result, error) {
	if nc.Status.ProviderID == "" {
		return reconcile.Result{}, nil // not launched yet; the launch updates the NodeClaim
	}
	id, err := r.opts.Fleet.InstanceID(nc.Status.ProviderID)
	if err != nil {
		return reconcile.Result{}, nil // another backend's NodeClaim
	}
	inst, err := r.opts.Fleet.Get(ctx, id)
	if cloudprovider.IsNotFound(err) {
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("getting instance %s, %w", id, err)
	}
	node := &corev1.Node{}
	err = r.opts.KubeClient.Get(ctx, types.NamespacedName{Name: nc.Name}, node)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("getting node %s, %w", nc.Name, err)
	}
	exists := err == nil
	if exists && node.Spec.ProviderID != nc.Status.ProviderID {
		return reconcile.Result{}, fmt.Errorf("node %s exists with provider ID %q, NodeClaim has %q", nc.Name, node.Spec.ProviderID, nc.Status.ProviderID)
	}
	if inst.State == cloudprovider.InstanceStateTerminated {
		if exists {
			return reconcile.Result{}, r.markNotReady(ctx, node)
		}
		return reconcile.Result{}, nil
	}
	if exists {
		if !hasReadyCondition(node) && nc.DeletionTimestamp.IsZero() {
			// Created, but its first status write was lost (e.g. to a
			// conflict with Karpenter's registration patch): post it again,
			// as a kubelet keeps posting status.
			return reconcile.Result{}, r.postStatus(ctx, nc, node, r.opts.Fleet.HidesGPUs(inst.ID))
		}
		return reconcile.Result{RequeueAfter: r.opts.StatusInterval}, nil
	}
	if !nc.DeletionTimestamp.IsZero() || r.opts.Fleet.NeverRegisters(inst.ID) {
		return reconcile.Result{}, nil
	}
	if due := r.RegistrationTime(inst); r.clk.Now().Before(due) {
		return reconcile.Result{RequeueAfter: due.Sub(r.clk.Now())}, nil
	}
	if err := r.createNode(ctx, nc, r.opts.Fleet.HidesGPUs(inst.ID)); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: r.opts.StatusInterval}, nil
}

func hasReadyCondition(node *corev1.Node) bool {
	return lo.ContainsBy(node.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == corev1.NodeReady })
}

// withoutAccelerators is rl without the accelerators a device plugin
// advertises (v1alpha1.AcceleratorResources).
func withoutAccelerators(rl corev1.ResourceList) corev1.ResourceList {
	return lo.OmitByKeys(rl, v1alpha1.AcceleratorResources)
}

// createNode registers the Node of a NodeClaim; noGPUs leaves out the
// accelerators, as when the device plugin never starts.
func (r *Registrar) createNode(ctx context.Context, nc *karpv1.NodeClaim, noGPUs bool) error {
	labels := lo.Assign(nc.Labels, map[string]string{corev1.LabelHostname: nc.Name})
	taints := append([]corev1.Taint{karpv1.UnregisteredNoExecuteTaint}, nc.Spec.Taints...)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nc.Name, Labels: labels},
		Spec:       corev1.NodeSpec{ProviderID: nc.Status.ProviderID, Taints: taints},
	}
	if err := r.opts.KubeClient.Create(ctx, node); err != nil {
		return fmt.Errorf("creating node %s, %w", nc.Name, err)
	}
	return r.postStatus(ctx, nc, node, noGPUs)
}

// postStatus writes the status a kubelet posts on registration: capacity,
// allocatable (without accelerators when noGPUs) and Ready.
func (r *Registrar) postStatus(ctx context.Context, nc *karpv1.NodeClaim, node *corev1.Node, noGPUs bool) error {
	stored := node.DeepCopy()
	labels := node.Labels
	now := metav1.NewTime(r.clk.Now())
	capacity, allocatable := nc.Status.Capacity.DeepCopy(), nc.Status.Allocatable.DeepCopy()
	if noGPUs {
		capacity, allocatable = withoutAccelerators(capacity), withoutAccelerators(allocatable)
	}
	node.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: allocatable,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		NodeInfo: corev1.NodeSystemInfo{Architecture: labels[corev1.LabelArchStable], OperatingSystem: labels[corev1.LabelOSStable]},
	}
	// A merge patch of the status alone: Karpenter patches the new Node's
	// labels, taints and finalizer meanwhile, which would make an Update
	// conflict.
	if err := r.opts.KubeClient.Status().Patch(ctx, node, client.MergeFrom(stored)); err != nil {
		return fmt.Errorf("setting status of node %s, %w", nc.Name, err)
	}
	return nil
}

func (r *Registrar) markNotReady(ctx context.Context, node *corev1.Node) error {
	stored := node.DeepCopy()
	now := metav1.NewTime(r.clk.Now())
	for i := range node.Status.Conditions {
		if c := &node.Status.Conditions[i]; c.Type == corev1.NodeReady && c.Status != corev1.ConditionUnknown {
			c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.", now
		}
	}
	if equalConditions(stored.Status.Conditions, node.Status.Conditions) {
		return nil
	}
	// Optimistic lock: the patch replaces the whole condition list.
	return client.IgnoreNotFound(r.opts.KubeClient.Status().Patch(ctx, node, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})))
}

func equalConditions(a, b []corev1.NodeCondition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status {
			return false
		}
	}
	return true
}

// ReconcilePod marks a pod bound to one of the fleet's registered nodes
// Running once PodStartDelay has passed since it was bound (its PodScheduled
// condition). Pods on other nodes, unbound, terminal or terminating pods are
// left alone.
func (r *Registrar) ReconcilePod(ctx context.Context, pod *corev1.Pod) (reconcile.Result, error) {
	if pod.Spec.NodeName == "" || !pod.DeletionTimestamp.IsZero() || (pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending) {
		return reconcile.Result{}, nil
	}
	node := &corev1.Node{}
	if err := r.opts.KubeClient.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, node); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if _, err := r.opts.Fleet.InstanceID(node.Spec.ProviderID); err != nil {
		return reconcile.Result{}, nil
	}
	bound := r.clk.Now()
	if c, ok := lo.Find(pod.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue
	}); ok {
		bound = c.LastTransitionTime.Time
	}
	if due := bound.Add(r.opts.PodStartDelay); r.clk.Now().Before(due) {
		return reconcile.Result{RequeueAfter: due.Sub(r.clk.Now())}, nil
	}
	stored := pod.DeepCopy()
	now := metav1.NewTime(r.clk.Now())
	pod.Status.Phase = corev1.PodRunning
	pod.Status.StartTime = &now
	for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setPodCondition(pod, t, now)
	}
	if err := r.opts.KubeClient.Status().Patch(ctx, pod, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, nil
}

func setPodCondition(pod *corev1.Pod, t corev1.PodConditionType, now metav1.Time) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			pod.Status.Conditions[i].Status, pod.Status.Conditions[i].LastTransitionTime = corev1.ConditionTrue, now
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
}

// Register runs the registrar as two controllers (NodeClaims and pods), for
// end-to-end tests against an API server.
func (r *Registrar) Register(_ context.Context, m manager.Manager) error {
	if err := controllerruntime.NewControllerManagedBy(m).
		Named(r.Name()).
		For(&karpv1.NodeClaim{}).
		Complete(reconcile.AsReconciler(m.GetClient(), reconcilerFunc[*karpv1.NodeClaim](r.Reconcile))); err != nil {
		return err
	}
	return controllerruntime.NewControllerManagedBy(m).
		Named(r.Name() + ".pods").
		For(&corev1.Pod{}).
		Complete(reconcile.AsReconciler(m.GetClient(), reconcilerFunc[*corev1.Pod](r.ReconcilePod)))
}

type reconcilerFunc[T client.Object] func(context.Context, T) (reconcile.Result, error)

func (f reconcilerFunc[T]) Reconcile(ctx context.Context, o T) (reconcile.Result, error) {
	return f(ctx, o)
}
