package packing

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"
	"sigs.k8s.io/karpenter/pkg/utils/resources"
)

// daemonOverheadGroups groups the template's instance types by the set of
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
func daemonOverheadGroups(tmpl *scheduling.NodeClaimTemplate, its []*cloudprovider.InstanceType, daemons []*corev1.Pod) ([]scheduling.DaemonOverheadGroup, map[*cloudprovider.InstanceType]corev1.ResourceList) {
	groups := map[string]*scheduling.DaemonOverheadGroup{}
	var order []string
	perType := make(map[*cloudprovider.InstanceType]corev1.ResourceList, len(its))
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

func daemonCompatible(tmpl *scheduling.NodeClaimTemplate, it *cloudprovider.InstanceType, p *corev1.Pod) bool {
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
