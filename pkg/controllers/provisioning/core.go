package provisioning

import (
	"context"
	"fmt"
	"math"

	"github.com/awslabs/operatorpkg/status"
	"github.com/samber/lo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/utils/daemonset"
	nodepoolutils "sigs.k8s.io/karpenter/pkg/utils/nodepool"
)

// This file holds what the provisioning loop mirrors from Karpenter core
// because core keeps it unexported; each function names the core code it
// follows, all in sigs.k8s.io/karpenter v1.15.0
// (pkg/controllers/provisioning/provisioner.go). A core upgrade must re-read
// them.

// CoreVersion is the Karpenter core release the functions below mirror.
const CoreVersion = "v1.15.0"

// schedulingNodePools are the NodePools core's Provisioner.NewScheduler
// schedules onto: managed by this cloud provider, dynamic (not static),
// Ready and not being deleted.
func schedulingNodePools(ctx context.Context, kube client.Client, cp karpcp.CloudProvider) ([]*karpv1.NodePool, error) {
	nps, err := nodepoolutils.ListManaged(ctx, kube, cp)
	if err != nil {
		return nil, err
	}
	return lo.Filter(nps, func(np *karpv1.NodePool, _ int) bool {
		return !nodepoolutils.IsStatic(np) && np.StatusConditions().IsTrue(status.ConditionReady) && np.DeletionTimestamp.IsZero()
	}), nil
}

// schedulerOptions are the options core's Provisioner.Schedule gives its
// scheduler.
func schedulerOptions(ctx context.Context) []scheduling.Options {
	opts := []scheduling.Options{
		scheduling.DisableReservedCapacityFallback,
		scheduling.NumConcurrentReconciles(int(math.Ceil(float64(options.FromContext(ctx).CPURequests) / 1000.0))),
		scheduling.MinValuesPolicy(options.FromContext(ctx).MinValuesPolicy),
	}
	if options.FromContext(ctx).PreferencePolicy == options.PreferencePolicyIgnore {
		opts = append(opts, scheduling.IgnorePreferences)
	}
	return opts
}

// daemonSetPods are the daemonset pods as core's Provisioner.getDaemonSetPods
// gives them to its scheduler: the pod the cluster last saw for each
// daemonset, or one made from its template, with the template's required
// node affinity (which the daemonset controller overwrites on the pods it
// creates). Unlike core, a pod from the cluster state is copied before its
// affinity is replaced.
func daemonSetPods(ctx context.Context, kube client.Client, cluster *state.Cluster) ([]*corev1.Pod, error) {
	dss := &appsv1.DaemonSetList{}
	if err := kube.List(ctx, dss); err != nil {
		return nil, fmt.Errorf("listing daemonsets, %w", err)
	}
	pods := make([]*corev1.Pod, 0, len(dss.Items))
	for i := range dss.Items {
		d := &dss.Items[i]
		p := cluster.GetDaemonSetPod(d)
		if p == nil {
			p = daemonset.PodForDaemonSet(d)
		}
		if a := d.Spec.Template.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			p = p.DeepCopy()
			if p.Spec.Affinity == nil {
				p.Spec.Affinity = &corev1.Affinity{}
			}
			if p.Spec.Affinity.NodeAffinity == nil {
				p.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
			}
			p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		}
		pods = append(pods, p)
	}
	return pods, nil
}
