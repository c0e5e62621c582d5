package cloudprovider

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
)

// Node conditions set by GPU health agents (EKS node monitoring agent, NPD
// with DCGM). Core acts on them only when its NodeRepair feature gate is on.
const (
	ConditionAcceleratedHardwareReady corev1.NodeConditionType = "AcceleratedHardwareReady"
	ConditionGPUXidError              corev1.NodeConditionType = "GPUXidError"
)

// RepairPolicies implements CloudProvider. Core requires exactly one policy
// with an empty ReasonRegex (the fallback): the kubelet's Ready=False. GPU
// faults are replaced rather than rebooted (see Reboot).
func (c *CloudProvider) RepairPolicies() []karpcp.RepairPolicy {
	return []karpcp.RepairPolicy{
		{ConditionType: corev1.NodeReady, ConditionStatus: corev1.ConditionFalse, TolerationDuration: 30 * time.Minute, Action: karpcp.ReplaceNode},
		{ConditionType: corev1.NodeReady, ConditionStatus: corev1.ConditionUnknown, ReasonRegex: ".*", TolerationDuration: 30 * time.Minute, Action: karpcp.ReplaceNode},
		{ConditionType: ConditionAcceleratedHardwareReady, ConditionStatus: corev1.ConditionFalse, ReasonRegex: ".*", TolerationDuration: 10 * time.Minute, Action: karpcp.ReplaceNode},
		{ConditionType: ConditionGPUXidError, ConditionStatus: corev1.ConditionTrue, ReasonRegex: ".*", TolerationDuration: 5 * time.Minute, Action: karpcp.ReplaceNode},
	}
}
