// Package coremirror holds what karpenter-gpu copies from Karpenter core
// because core keeps it unexported, in this one file, all from
// sigs.k8s.io/karpenter v1.15.0: which NodePools the provisioner schedules
// onto, the options it gives its scheduler and the daemonset pods it hands
// it (pkg/controllers/provisioning/provisioner.go), and how the scheduler
// groups instance types by daemonset overhead
// (pkg/controllers/provisioning/scheduling/scheduler.go). The provisioning
// loop (pkg/controllers/provisioning) and the packer (pkg/packing) use
// these, never copies of their own. A core upgrade must re-read this file:
// TestCoreMirrorsTheLinkedKarpenter fails on another core release, and
// TestCoreDaemonOverheadMirrored (pkg/controllers/provisioning) when core's
// scheduler charges another daemonset overhead than these mirrors do.
package coremirror

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

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
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/daemonset"
	nodepoolutils "sigs.k8s.io/karpenter/pkg/utils/nodepool"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"
	"sigs.k8s.io/karpenter/pkg/utils/resources"
)

// CoreVersion is the Karpenter core release the functions below mirror.
const CoreVersion = "v1.15.0"

// SchedulingNodePools are the NodePools core's Provisioner.NewScheduler
// schedules onto: managed by this cloud provider, dynamic (not static),
// Ready and not being deleted.
func SchedulingNodePools(ctx context.Context, kube client.Client, cp karpcp.CloudProvider) ([]*karpv1.NodePool, error) {
	nps, err := nodepoolutils.ListManaged(ctx, kube, cp)
	if err != nil {
		return nil, err
	}
	return lo.Filter(nps, func(np *karpv1.NodePool, _ int) bool {
		return !nodepoolutils.IsStatic(np) && np.StatusConditions().IsTrue(status.ConditionReady) && np.DeletionTimestamp.IsZero()
	}), nil
}

// SchedulerOptions are the options core's Provisioner.Schedule gives its
// scheduler.
func SchedulerOptions(ctx context.Context) []scheduling.Options {
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

// DaemonSetPods are the daemonset pods as core's Provisioner.getDaemonSetPods
// gives them to its scheduler: the pod the cluster last saw for each
// daemonset, or one made from its template, with the template's required
// node affinity (which the daemonset controller overwrites on the pods it
// creates). Unlike core, a pod from the cluster state is copied before its
// affinity is replaced.
func DaemonSetPods(ctx context.Context, kube client.Client, cluster *state.Cluster) ([]*corev1.Pod, error) {
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

// DaemonOverheadGroups groups the template's instance types by the set of
// daemonset pods that would run on them, as Karpenter core's scheduler does
// (scheduler.go buildDaemonOverheadGroups, v1.15.0): a daemon pod counts on
// a type when it tolerates the template's taints (PreferNoSchedule always
// tolerated) and its required node affinity, relaxed term by term, is
// compatible with the template and intersects the type's requirements. Pods
// with DRA claims are skipped, as core does under --ignore-dra-requests
// (the default).
//
// The overhead of a group is resources.RequestsForPods of its pods, so it
// includes "pods: N". NodeClaims built from these groups get the minimum
// overhead over their remaining types added by FinalizeScheduling, exactly
// as core's do.
func DaemonOverheadGroups(tmpl *scheduling.NodeClaimTemplate, its []*karpcp.InstanceType, daemons []*corev1.Pod) ([]scheduling.DaemonOverheadGroup, map[*karpcp.InstanceType]corev1.ResourceList) {
	groups := map[string]*scheduling.DaemonOverheadGroup{}
	var order []string
	perType := make(map[*karpcp.InstanceType]corev1.ResourceList, len(its))
	for _, it := range its {
		var compatible []*corev1.Pod
		for _, p := range daemons {
			if podutils.HasDRARequirements(p) {
				continue
			}
			if daemonCompatible(tmpl, it, p) {
				compatible = append(compatible, p)
			}
		}
		key := daemonSetKey(compatible)
		g, ok := groups[key]
		if !ok {
			var overhead corev1.ResourceList
			if len(compatible) > 0 {
				overhead = resources.RequestsForPods(compatible...)
			}
			g = &scheduling.DaemonOverheadGroup{DaemonOverhead: overhead, HostPortUsage: kscheduling.NewHostPortUsage()}
			groups[key] = g
			order = append(order, key)
		}
		g.InstanceTypes = append(g.InstanceTypes, it)
		perType[it] = g.DaemonOverhead
	}
	out := make([]scheduling.DaemonOverheadGroup, 0, len(order))
	for _, k := range order {
		out = append(out, *groups[k])
	}
	return out, perType
}

func daemonSetKey(pods []*corev1.Pod) string {
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = client.ObjectKeyFromObject(p).String() + "/" + string(p.UID)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func daemonCompatible(tmpl *scheduling.NodeClaimTemplate, it *karpcp.InstanceType, p *corev1.Pod) bool {
	pod := p.DeepCopy()
	// A daemon pod does not respect PreferNoSchedule taints.
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule})
	if err := kscheduling.Taints(tmpl.Spec.Taints).ToleratesPod(pod); err != nil {
		return false
	}
	for {
		reqs := kscheduling.NewStrictPodRequirements(pod)
		if tmpl.Requirements.IsCompatible(reqs, kscheduling.AllowUndefinedWellKnownLabels) && it.Requirements.Intersects(reqs) == nil {
			return true
		}
		na := pod.Spec.Affinity
		if na == nil || na.NodeAffinity == nil || na.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil ||
			len(na.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) <= 1 {
			return false
		}
		terms := na.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		na.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = terms[1:]
	}
}
