package simulation

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
)

// kubeSchedule plays kube-scheduler, which Karpenter never replaces: each
// pending pod (oldest first) is placed by kube-scheduler v1.36's filters and
// scores under the configured profile (package kubescheduler): among the
// Ready nodes it fits (schedulable, NoSchedule/NoExecute taints tolerated,
// node selector and required affinity, resources), the pod's
// status.nominatedNodeName if set, else the node with the highest score, the
// first by name among equals; pending pods nominated to a node hold their
// requests there against pods of equal or lower priority (kube-scheduler's
// nominator). Karpenter's own plan (the NodeClaim a pod was planned on) is
// an input only once written as the pod's nominatedNodeName (the
// karpenter-gpu policy's nomination controller; stock Karpenter never
// writes it): otherwise kube-scheduler may bind the pod elsewhere, and so
// does this one. Binding clears nominatedNodeName, as kube-apiserver does
// (KEP-5278). A pod that fits nowhere
// is marked PodScheduled=False, reason Unschedulable, which is what makes
// Karpenter provision for it.
func (e *engine) kubeSchedule() error {
	e.as("kube-scheduler")
	// The lists share the cache's objects (readOnly): the pods this
	// writes are deep-copied first.
	pods := &corev1.PodList{}
	if err := e.kube.List(e.ctx, pods, e.readOnly()...); err != nil {
		return err
	}
	nodes := &corev1.NodeList{}
	if err := e.kube.List(e.ctx, nodes, e.readOnly()...); err != nil {
		return err
	}
	var infos []*kubescheduler.NodeInfo
	byName := map[string]*kubescheduler.NodeInfo{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		// Not Ready: the node lifecycle controller's not-ready taint keeps
		// kube-scheduler off it. Deleting: Karpenter's disrupted taint does.
		if !n.DeletionTimestamp.IsZero() || !nodeReady(n) {
			continue
		}
		ni := kubescheduler.NewNodeInfo(n)
		infos = append(infos, ni)
		byName[n.Name] = ni
	}
	kubescheduler.SortByName(infos)
	var pending []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if podutils.IsTerminal(p) {
			continue
		}
		if p.Spec.NodeName != "" {
			if ni := byName[p.Spec.NodeName]; ni != nil {
				ni.AddPod(p)
			}
			continue
		}
		if len(p.Spec.SchedulingGates) > 0 {
			// Not scheduled while gated (a pod group waiting for its
			// capacity): kube-scheduler says so, and Karpenter does not
			// provision for it.
			if err := e.markGated(p.DeepCopy()); err != nil {
				return err
			}
			continue
		}
		if p.DeletionTimestamp.IsZero() {
			pending = append(pending, p.DeepCopy())
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
	now := metav1.NewTime(e.clk.Now())
	sps := make([]*kubescheduler.Pod, len(pending))
	for i, p := range pending {
		sps[i] = kubescheduler.NewPod(p)
		if ni := byName[p.Status.NominatedNodeName]; ni != nil {
			ni.Nominate(sps[i])
		}
	}
	for i, p := range pending {
		sp := sps[i]
		res := kubescheduler.Schedule(e.cfg.SchedulerProfile, sp, infos)
		if res.Node == nil {
			if !podutils.FailedToSchedule(p) {
				msg := fmt.Sprintf("0/%d nodes are available", len(infos))
				if res.Err != nil {
					msg = res.Err.Error()
				}
				stored := p.DeepCopy()
				setCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
					Message: msg, LastTransitionTime: now})
				if err := e.kube.Status().Patch(e.ctx, p, client.MergeFrom(stored)); err != nil {
					return fmt.Errorf("marking pod %s unschedulable, %w", p.Name, err)
				}
			}
			continue
		}
		chosen := res.Node
		sp.Reserve(chosen)
		p.Spec.NodeName = chosen.Node.Name
		if err := e.kube.Update(e.ctx, p); err != nil {
			return fmt.Errorf("binding pod %s to %s, %w", p.Name, chosen.Node.Name, err)
		}
		stored := p.DeepCopy()
		setCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now})
		p.Status.NominatedNodeName = ""
		if err := e.kube.Status().Patch(e.ctx, p, client.MergeFrom(stored)); err != nil {
			return fmt.Errorf("binding pod %s, %w", p.Name, err)
		}
		key := client.ObjectKeyFromObject(p)
		e.debugf("bind %s %s", p.Name, chosen.Node.Name)
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
