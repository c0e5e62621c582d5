package simulation

import (
	"fmt"
	"sort"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"
	"sigs.k8s.io/karpenter/pkg/utils/resources"
)

// kubeSchedule plays kube-scheduler, which Karpenter never replaces: each
// pending pod (oldest first) is bound to a node it fits: Ready, schedulable,
// every NoSchedule/NoExecute taint tolerated, node selector and required
// node affinity matched (kube-scheduler's own helpers), requests within
// allocatable minus what bound pods request. Among feasible nodes the node
// of the NodeClaim Karpenter nominated the pod for is preferred, else the
// first by name. A pod that fits nowhere is marked PodScheduled=False,
// reason Unschedulable, which is what makes Karpenter provision for it.
func (e *engine) kubeSchedule() error {
	e.as("kube-scheduler")
	pods := &corev1.PodList{}
	if err := e.kube.List(e.ctx, pods); err != nil {
		return err
	}
	nodes := &corev1.NodeList{}
	if err := e.kube.List(e.ctx, nodes); err != nil {
		return err
	}
	type nodeInfo struct {
		node *corev1.Node
		free corev1.ResourceList
	}
	var infos []*nodeInfo
	byName := map[string]*nodeInfo{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !n.DeletionTimestamp.IsZero() || n.Spec.Unschedulable || !nodeReady(n) {
			continue
		}
		ni := &nodeInfo{node: n, free: n.Status.Allocatable.DeepCopy()}
		infos = append(infos, ni)
		byName[n.Name] = ni
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].node.Name < infos[j].node.Name })
	var pending []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if podutils.IsTerminal(p) {
			continue
		}
		if p.Spec.NodeName != "" {
			if ni := byName[p.Spec.NodeName]; ni != nil {
				ni.free = resources.Subtract(ni.free, resources.RequestsForPods(p))
			}
			continue
		}
		if p.DeletionTimestamp.IsZero() {
			pending = append(pending, p)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	sort.Slice(pending, func(i, j int) bool {
		if !pending[i].CreationTimestamp.Equal(&pending[j].CreationTimestamp) {
			return pending[i].CreationTimestamp.Before(&pending[j].CreationTimestamp)
		}
		return pending[i].Name < pending[j].Name
	})
	// Nominations name NodeClaims; nodes carry their provider IDs.
	claimNode := map[string]string{}
	if len(e.nominated) > 0 {
		ncs := &karpv1.NodeClaimList{}
		if err := e.kube.List(e.ctx, ncs); err != nil {
			return err
		}
		for i := range ncs.Items {
			if n := ncs.Items[i].Status.NodeName; n != "" {
				claimNode[ncs.Items[i].Name] = n
			}
		}
	}
	now := metav1.NewTime(e.clk.Now())
	for _, p := range pending {
		req := resources.RequestsForPods(p)
		affinity := nodeaffinity.GetRequiredNodeAffinity(p)
		fits := func(ni *nodeInfo) bool {
			if ni == nil || !resources.Fits(req, ni.free) {
				return false
			}
			if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), ni.node.Spec.Taints, p.Spec.Tolerations, func(t *corev1.Taint) bool {
				return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
			}, false); untolerated {
				return false
			}
			ok, err := affinity.Match(ni.node)
			return err == nil && ok
		}
		key := client.ObjectKeyFromObject(p)
		var chosen *nodeInfo
		if nc, ok := e.nominated[key]; ok {
			if ni := byName[claimNode[nc]]; fits(ni) {
				chosen = ni
			}
		}
		if chosen == nil {
			for _, ni := range infos {
				if fits(ni) {
					chosen = ni
					break
				}
			}
		}
		if chosen == nil {
			if !podutils.FailedToSchedule(p) {
				stored := p.DeepCopy()
				setCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
					Message: "0/N nodes are available", LastTransitionTime: now})
				if err := e.kube.Status().Patch(e.ctx, p, client.MergeFrom(stored)); err != nil {
					return fmt.Errorf("marking pod %s unschedulable, %w", p.Name, err)
				}
			}
			continue
		}
		chosen.free = resources.Subtract(chosen.free, req)
		p.Spec.NodeName = chosen.node.Name
		if err := e.kube.Update(e.ctx, p); err != nil {
			return fmt.Errorf("binding pod %s to %s, %w", p.Name, chosen.node.Name, err)
		}
		stored := p.DeepCopy()
		setCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now})
		if err := e.kube.Status().Patch(e.ctx, p, client.MergeFrom(stored)); err != nil {
			return fmt.Errorf("binding pod %s, %w", p.Name, err)
		}
		delete(e.nominated, key)
		e.debugf("bind %s %s", p.Name, chosen.node.Name)
		e.enqueue(cPodEvents, key) // the bound transition Karpenter's pod-event tracking watches
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setCondition(p *corev1.Pod, c corev1.PodCondition) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == c.Type {
			p.Status.Conditions[i] = c
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, c)
}
