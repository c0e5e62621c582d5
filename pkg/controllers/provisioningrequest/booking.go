package provisioningrequest

import (
	"context"
	"fmt"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// book holds a provisioned request's capacity until its pods are bound
// (released, no condition), a booked node goes away (CapacityRevoked) or
// BookingTTL passes since Provisioned (BookingExpired).
func (c *Controller) book(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (reconcile.Result, error) {
	if detail(pr, DetailBooking) != BookingHeld {
		return reconcile.Result{}, nil
	}
	now := c.clock.Now()
	if pr.Spec.ProvisioningClassName == autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp {
		for _, name := range lo.Compact(strings.Split(detail(pr, DetailNodeClaims), ",")) {
			nc := &karpv1.NodeClaim{}
			err := c.kube.Get(ctx, client.ObjectKey{Name: name}, nc)
			if err != nil && !apierrors.IsNotFound(err) {
				return reconcile.Result{}, err
			}
			if err != nil || !nc.DeletionTimestamp.IsZero() {
				setCondition(pr, autoscalingv1.CapacityRevoked, metav1.ConditionTrue, ReasonCapacityRevoked,
					fmt.Sprintf("NodeClaim %s of the booked capacity was deleted before the pods were bound", name), metav1.NewTime(now))
				return reconcile.Result{}, c.release(ctx, pr, BookingRevoked)
			}
		}
	}
	bound, err := c.boundPods(ctx, pr)
	if err != nil {
		return reconcile.Result{}, err
	}
	if total := lo.SumBy(pr.Spec.PodSets, func(ps autoscalingv1.PodSet) int { return int(ps.Count) }); bound >= total {
		return reconcile.Result{}, c.release(ctx, pr, BookingConsumed)
	}
	since := now
	if cond := meta.FindStatusCondition(pr.Status.Conditions, autoscalingv1.Provisioned); cond != nil {
		since = cond.LastTransitionTime.Time
	}
	if left := since.Add(c.opts.BookingTTL).Sub(now); left > 0 {
		return reconcile.Result{RequeueAfter: min(left, pollInterval)}, nil
	}
	setCondition(pr, autoscalingv1.BookingExpired, metav1.ConditionTrue, ReasonCapacityReservationTimeExpired, MsgCapacityReservationTimeExpired, metav1.NewTime(now))
	return reconcile.Result{}, c.release(ctx, pr, BookingExpired)
}

// boundPods counts the request's pods (annotated as consuming it, as Kueue
// annotates them) that are bound to a node.
func (c *Controller) boundPods(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (int, error) {
	pods := &corev1.PodList{}
	if err := c.kube.List(ctx, pods, client.InNamespace(pr.Namespace)); err != nil {
		return 0, err
	}
	return lo.CountBy(pods.Items, func(p corev1.Pod) bool {
		return p.Annotations[autoscalingv1.ProvisioningRequestPodAnnotationKey] == pr.Name && p.Spec.NodeName != "" && p.DeletionTimestamp.IsZero()
	}), nil
}

// release drops the hold on the request's nodes: karpenter.sh/do-not-disrupt
// comes off its NodeClaims and their Nodes (the request's label stays, for
// attribution), so consolidation and idle-GPU removal treat them as any
// other node. state, when set, is recorded in the request's details.
func (c *Controller) release(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, state string) error {
	if err := ReleaseHold(ctx, c.kube, string(pr.UID)); err != nil {
		return err
	}
	if state != "" {
		setDetail(pr, DetailBooking, state)
	} else if detail(pr, DetailBooking) == BookingHeld {
		setDetail(pr, DetailBooking, "released")
	}
	return nil
}

// TaintBooked keeps other pods off the nodes launched for a pod group's
// request while its booking is held: the NodeClaims carry it (value: the
// request's UID, effect NoSchedule), the group's pods get the toleration as
// they are ungated, and the release removes it from the Nodes. Cluster
// Autoscaler books capacity only in its own simulation (for scale-down and
// other requests), not against other pods; pod groups can do more because
// the controller adds the toleration before their pods can be scheduled.
// Kueue's pods are created by Kueue without it, so Kueue's requests are
// not tainted.
const TaintBooked = v1alpha1.Group + "/booked"

// BookingTaint is the taint of a pod group request's nodes.
func BookingTaint(uid string) corev1.Taint {
	return corev1.Taint{Key: TaintBooked, Value: uid, Effect: corev1.TaintEffectNoSchedule}
}

// BookingToleration tolerates BookingTaint(uid).
func BookingToleration(uid string) corev1.Toleration {
	return corev1.Toleration{Key: TaintBooked, Operator: corev1.TolerationOpEqual, Value: uid, Effect: corev1.TaintEffectNoSchedule}
}

// ReleaseHold removes karpenter.sh/do-not-disrupt from every NodeClaim
// launched for the request with this UID and from their Nodes, and the
// booking taint from the Nodes (a NodeClaim's spec is immutable; its taints
// only apply at registration).
func ReleaseHold(ctx context.Context, kube client.Client, uid string) error {
	list := &karpv1.NodeClaimList{}
	if err := kube.List(ctx, list, client.MatchingLabels{LabelRequest: uid}); err != nil {
		return err
	}
	for i := range list.Items {
		nc := &list.Items[i]
		if err := dropDoNotDisrupt(ctx, kube, nc); err != nil {
			return err
		}
		if nc.Status.NodeName == "" {
			continue
		}
		node := &corev1.Node{}
		if err := kube.Get(ctx, client.ObjectKey{Name: nc.Status.NodeName}, node); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		if err := dropDoNotDisrupt(ctx, kube, node); err != nil {
			return err
		}
		if err := dropBookingTaint(ctx, kube, node); err != nil {
			return err
		}
	}
	return nil
}

func dropDoNotDisrupt[T client.Object](ctx context.Context, kube client.Client, o T) error {
	if _, ok := o.GetAnnotations()[karpv1.DoNotDisruptAnnotationKey]; !ok {
		return nil
	}
	stored := o.DeepCopyObject().(T)
	ann := lo.OmitByKeys(o.GetAnnotations(), []string{karpv1.DoNotDisruptAnnotationKey})
	o.SetAnnotations(ann)
	return client.IgnoreNotFound(kube.Patch(ctx, o, client.MergeFrom(stored)))
}

func dropBookingTaint(ctx context.Context, kube client.Client, node *corev1.Node) error {
	if !lo.ContainsBy(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == TaintBooked }) {
		return nil
	}
	stored := node.DeepCopy()
	node.Spec.Taints = lo.Reject(node.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.Key == TaintBooked })
	return client.IgnoreNotFound(kube.Patch(ctx, node, client.MergeFrom(stored)))
}
