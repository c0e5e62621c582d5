package provisioningrequest

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

// ReconcileNodeClaim handles a NodeClaim whose request is gone (deleted,
// or recreated under the same name with another UID, as Kueue does between
// attempts): a NodeClaim of an attempt still in flight (not registered) is
// deleted, since nobody waits for it; a registered one loses its hold and is
// left to consolidation.
func (c *Controller) ReconcileNodeClaim(ctx context.Context, nc *karpv1.NodeClaim) (reconcile.Result, error) {
	key, ok := RequestKey(nc)
	if !ok || !nc.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	req := &autoscalingv1.ProvisioningRequest{}
	err := c.kube.Get(ctx, key, req)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	if err == nil && string(req.UID) == nc.Labels[LabelRequest] {
		return reconcile.Result{}, nil
	}
	if !nc.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue() {
		log.FromContext(ctx).Info("deleting NodeClaim of a gang whose ProvisioningRequest is gone", "NodeClaim", nc.Name, "ProvisioningRequest", key)
		return reconcile.Result{}, client.IgnoreNotFound(c.kube.Delete(ctx, nc))
	}
	if _, held := nc.Annotations[karpv1.DoNotDisruptAnnotationKey]; !held {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, ReleaseHold(ctx, c.kube, nc.Labels[LabelRequest])
}
