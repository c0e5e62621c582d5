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

// ReleaseHold removes karpenter.sh/do-not-disrupt from every NodeClaim
// launched for the request with this UID and from their Nodes.
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
