// Package interruption handles EC2 interruption events from karpenter-gpu's
// own queue, as Karpenter for AWS does from its own: a singleton that polls
// a Queue (providers/aws/sqs: an SQS queue fed by EventBridge rules) and,
// for each message about an instance of a karpenter-gpu NodeClaim (its
// nodeClassRef is a GPUNodeClass), records an event on the NodeClaim and its
// Node and, on a spot interruption warning, a scheduled change or an
// instance stopping or terminating, or the interruption of its capacity
// reservation, deletes the NodeClaim so that core's
// termination controller cordons and drains the node within the two-minute
// warning. A rebalance recommendation is recorded only. Messages about other
// instances (Karpenter for AWS's, unmanaged nodes) are deleted without
// action, as are messages it cannot use (logged as errors, counted).
//
// A message is deleted once handled; when a NodeClaim cannot be deleted it
// stays in the queue and is received again after the visibility timeout.
package interruption

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/awslabs/operatorpkg/singleton"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"
	coremetrics "sigs.k8s.io/karpenter/pkg/metrics"
	nodeclaimutils "sigs.k8s.io/karpenter/pkg/utils/nodeclaim"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// Values of the action label of karpenter_gpu_interruption_actions_total.
const (
	// ActionCordonAndDrain: the NodeClaim was deleted; core's termination
	// controller cordons and drains its node.
	ActionCordonAndDrain = "cordon_and_drain"
	// ActionNone: an event was recorded, nothing else (rebalance
	// recommendation).
	ActionNone = "no_action"
)

var (
	// ReceivedMessages counts queue messages by kind.
	ReceivedMessages = metrics.NewCounterVec("interruption", "received_messages_total", "Messages received from karpenter-gpu's interruption queue, by message_type (spot_interrupted, capacity_reservation_interrupted, rebalance_recommendation, scheduled_change, state_change, no_op, unknown, malformed).", metrics.LabelMessageType)
	// DeletedMessages counts messages deleted from the queue.
	DeletedMessages = metrics.NewCounter("interruption", "deleted_messages_total", "Messages deleted from karpenter-gpu's interruption queue after they were handled (or found unusable).")
	// Actions counts what was done to karpenter-gpu NodeClaims.
	Actions = metrics.NewCounterVec("interruption", "actions_total", "Actions taken on karpenter-gpu NodeClaims for interruption messages: cordon_and_drain (the NodeClaim was deleted) or no_action (an event only).", metrics.LabelAction)
	// MessageLatency is the time from an event to its handling.
	MessageLatency = metrics.NewHistogram("interruption", "message_queue_duration_seconds", "Time from an interruption event (its EventBridge time) to the end of its handling.",
		[]float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300})
)

// Unavailable is where a spot interruption marks the interrupted offering,
// so the replacement is not launched into the pool being reclaimed
// (pkg/cloudprovider.UnavailableOfferings is one).
type Unavailable interface {
	MarkUnavailable(instanceType, zone, capacityType string)
}

// Defaults of Options.
const (
	DefaultIdleInterval = time.Second
	DefaultWorkers      = 10
)

// Options configure the controller.
type Options struct {
	Clock      clock.Clock // nil means the real clock
	KubeClient client.Client
	Recorder   events.Recorder
	Queue      Queue
	// Unavailable, when set, is told the offering of a spot-interrupted
	// NodeClaim.
	Unavailable Unavailable
	// IdleInterval is the pause after a poll that returned no message (the
	// queue's long poll is the main wait); 0 means DefaultIdleInterval.
	IdleInterval time.Duration
	// Workers handle a batch's messages in parallel; 0 means
	// DefaultWorkers.
	Workers int
}

// Controller is the interruption handler.
type Controller struct {
	opts Options
}

// NewController returns the interruption handler.
func NewController(o Options) *Controller {
	o.Clock = lo.Ternary[clock.Clock](o.Clock == nil, clock.RealClock{}, o.Clock)
	if o.IdleInterval <= 0 {
		o.IdleInterval = DefaultIdleInterval
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	return &Controller{opts: o}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.interruption" }

// Register wires the singleton into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(c.Name()).WatchesRawSource(singleton.Source()).Complete(singleton.AsReconciler(c))
}

// Reconcile polls the queue once: again at once after a batch, after
// IdleInterval when the poll came back empty.
func (c *Controller) Reconcile(ctx context.Context) (reconciler.Result, error) {
	n, err := c.Poll(ctx)
	if err != nil {
		return reconciler.Result{}, err
	}
	if n == 0 {
		return reconciler.Result{RequeueAfter: c.opts.IdleInterval}, nil
	}
	return reconciler.Result{RequeueAfter: singleton.RequeueImmediately}, nil
}

// Poll receives one batch of messages and handles each; it returns how many
// were received. A message whose handling failed stays in the queue.
func (c *Controller) Poll(ctx context.Context) (int, error) {
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("queue", c.opts.Queue.Name()))
	msgs, err := c.opts.Queue.Receive(ctx)
	if err != nil {
		return 0, fmt.Errorf("receiving from interruption queue %q, %w", c.opts.Queue.Name(), err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	var claims map[string]*karpv1.NodeClaim
	if lo.SomeBy(msgs, actionable) {
		if claims, err = c.claimsByInstance(ctx); err != nil {
			return len(msgs), err
		}
	}
	errs := make([]error, len(msgs))
	workqueue.ParallelizeUntil(ctx, c.opts.Workers, len(msgs), func(i int) {
		errs[i] = c.handle(ctx, claims, msgs[i])
	})
	return len(msgs), errors.Join(errs...)
}

// actionable reports whether a message may concern a NodeClaim.
func actionable(m Message) bool {
	switch m.Kind {
	case KindSpotInterruption, KindCapacityReservationInterruption, KindRebalanceRecommendation, KindScheduledChange:
		return true
	case KindStateChange:
		return terminalState(m.State)
	default:
		return false
	}
}

func terminalState(s string) bool {
	return slices.Contains([]string{StateStopping, StateStopped, StateShuttingDown, StateTerminated}, s)
}

// handle acts on a message and deletes it, or leaves it in the queue when
// acting failed.
func (c *Controller) handle(ctx context.Context, claims map[string]*karpv1.NodeClaim, m Message) error {
	ReceivedMessages.WithLabelValues(string(m.Kind)).Inc()
	logger := log.FromContext(ctx).WithValues("message", m.ID, "kind", m.Kind)
	ctx = log.IntoContext(ctx, logger)
	switch {
	case actionable(m):
		var errs []error
		for _, id := range lo.Uniq(m.InstanceIDs) {
			nc, ok := claims[id]
			if !ok {
				// Another provisioner's instance, or one whose NodeClaim
				// is gone: nothing of karpenter-gpu's to do.
				logger.V(1).Info("no karpenter-gpu NodeClaim for the instance", "instance", id)
				continue
			}
			// A copy: messages of one batch about one instance are
			// handled by different workers.
			if err := c.act(ctx, m, id, nc.DeepCopy()); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("handling message %s (%s), %w", m.ID, m.Kind, err)
		}
		if !m.Time.IsZero() {
			MessageLatency.Observe(c.opts.Clock.Since(m.Time).Seconds())
		}
	case m.Kind == KindNoOp, m.Kind == KindStateChange:
		// Well-formed, asks for nothing (a state change to pending or
		// running, a Health event of another service).
	default:
		err := m.Err
		if err == nil {
			err = fmt.Errorf("message kind %q is not handled", m.Kind)
		}
		logger.Error(err, "deleting an interruption message that cannot be used")
	}
	if err := c.opts.Queue.Delete(ctx, m); err != nil {
		return fmt.Errorf("deleting message %s from interruption queue %q, %w", m.ID, c.opts.Queue.Name(), err)
	}
	DeletedMessages.Inc()
	return nil
}

// act records the message on the NodeClaim (and its Node) and deletes the
// NodeClaim unless the message is a rebalance recommendation.
func (c *Controller) act(ctx context.Context, m Message, instanceID string, nc *karpv1.NodeClaim) error {
	node := c.node(ctx, nc)
	reason, message := describe(m)
	c.publish(nc, node, corev1.EventTypeWarning, reason, message, m.Kind)
	if m.Kind == KindRebalanceRecommendation {
		Actions.WithLabelValues(ActionNone).Inc()
		log.FromContext(ctx).Info("spot rebalance recommendation, no action", "instance", instanceID, "NodeClaim", nc.Name)
		return nil
	}
	if m.Kind == KindSpotInterruption && c.opts.Unavailable != nil {
		it, zone := nc.Labels[corev1.LabelInstanceTypeStable], nc.Labels[corev1.LabelTopologyZone]
		if it != "" && zone != "" {
			c.opts.Unavailable.MarkUnavailable(it, zone, karpv1.CapacityTypeSpot)
		}
	}
	if !nc.DeletionTimestamp.IsZero() {
		return nil
	}
	if err := c.opts.KubeClient.Delete(ctx, nc); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		return fmt.Errorf("deleting NodeClaim %s of instance %s, %w", nc.Name, instanceID, err)
	}
	Actions.WithLabelValues(ActionCordonAndDrain).Inc()
	// Core's disruption count, as core's own deleters (expiration, garbage
	// collection) and Karpenter for AWS's interruption handler keep it.
	coremetrics.NodeClaimsDisruptedTotal.Inc(map[string]string{
		coremetrics.ReasonLabel:              string(m.Kind),
		coremetrics.NodePoolLabel:            nc.Labels[karpv1.NodePoolLabelKey],
		coremetrics.CapacityTypeLabel:        nc.Labels[karpv1.CapacityTypeLabelKey],
		coremetrics.ConsolidationPolicyLabel: "",
		coremetrics.TerminationModeLabel:     nodeclaimutils.DisruptionTerminationMode(nc),
	})
	log.FromContext(ctx).Info("deleting NodeClaim on interruption message", "instance", instanceID, "NodeClaim", nc.Name, "Node", nc.Status.NodeName)
	c.publish(nc, node, corev1.EventTypeWarning, "TerminatingOnInterruption",
		fmt.Sprintf("Interruption (%s) triggered the NodeClaim's deletion; its node is cordoned and drained", reason), "terminating")
	return nil
}

// describe is the event of a message.
func describe(m Message) (reason, message string) {
	switch m.Kind {
	case KindSpotInterruption:
		return "SpotInterrupted", "Spot interruption warning: EC2 reclaims the instance in two minutes"
	case KindCapacityReservationInterruption:
		return "CapacityReservationInterrupted", "Capacity reservation interruption warning: the reservation's owner reclaims the instance in two minutes"
	case KindRebalanceRecommendation:
		return "SpotRebalanceRecommendation", "Spot rebalance recommendation: EC2 sees an elevated risk of interruption"
	case KindScheduledChange:
		return "InstanceScheduledChange", "AWS Health scheduled change (retirement or maintenance) of the instance"
	case KindStateChange:
		if m.State == StateStopping || m.State == StateStopped {
			return "InstanceStopping", "Instance is " + m.State
		}
		return "InstanceTerminating", "Instance is " + m.State
	default:
		return "Interruption", string(m.Kind)
	}
}

func (c *Controller) publish(nc *karpv1.NodeClaim, node *corev1.Node, typ, reason, message string, dedupe Kind) {
	c.opts.Recorder.Publish(events.Event{InvolvedObject: nc, Type: typ, Reason: reason, Message: message, DedupeValues: []string{string(nc.UID), string(dedupe)}})
	if node != nil {
		c.opts.Recorder.Publish(events.Event{InvolvedObject: node, Type: typ, Reason: reason, Message: message, DedupeValues: []string{string(node.UID), string(dedupe)}})
	}
}

// node is the NodeClaim's Node, nil when it has none (yet).
func (c *Controller) node(ctx context.Context, nc *karpv1.NodeClaim) *corev1.Node {
	if nc.Status.NodeName == "" {
		return nil
	}
	node := &corev1.Node{}
	if err := c.opts.KubeClient.Get(ctx, client.ObjectKey{Name: nc.Status.NodeName}, node); err != nil {
		return nil
	}
	return node
}

// claimsByInstance maps the instance ID of each karpenter-gpu NodeClaim
// (the last segment of its providerID, aws:///<zone>/<id>) to it.
func (c *Controller) claimsByInstance(ctx context.Context) (map[string]*karpv1.NodeClaim, error) {
	list := &karpv1.NodeClaimList{}
	if err := c.opts.KubeClient.List(ctx, list); err != nil {
		return nil, fmt.Errorf("listing NodeClaims, %w", err)
	}
	out := map[string]*karpv1.NodeClaim{}
	for i := range list.Items {
		nc := &list.Items[i]
		if nc.Spec.NodeClassRef == nil || nc.Spec.NodeClassRef.Group != v1alpha1.Group {
			continue
		}
		if id := InstanceID(nc.Status.ProviderID); id != "" {
			out[id] = nc
		}
	}
	return out, nil
}

// InstanceID is the instance ID a provider ID ends with ("" for none).
func InstanceID(providerID string) string {
	if providerID == "" {
		return ""
	}
	return providerID[strings.LastIndex(providerID, "/")+1:]
}
