package provisioningrequest

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
)

// Condition reasons and messages. Where Cluster Autoscaler has one for the
// same outcome (cluster-autoscaler/provisioningrequest/conditions), the
// string is the same, so tools and people that read CA's conditions read
// ours; Kueue itself acts on the condition types and their status and copies
// the message into the workload's admission check.
const (
	ReasonAccepted = "Accepted"
	MsgAccepted    = "ProvisioningRequest is accepted by karpenter-gpu"

	// check-capacity and best-effort-atomic with everything on existing nodes.
	ReasonCapacityIsFound = "CapacityIsFound"
	MsgCapacityIsFound    = "Capacity is found in the cluster"
	// Provisioned=False while the request waits (check-capacity) or retries
	// (atomic), and Failed=True once the atomic attempts are used up.
	ReasonCapacityIsNotFound = "CapacityIsNotFound"
	// Provisioned=True for best-effort-atomic: every NodeClaim registered.
	ReasonCapacityIsProvisioned = "CapacityIsProvisioned"
	MsgCapacityIsProvisioned    = "Capacity is provisioned: every node of the request registered"
	// Failed=True: the pod sets cannot be built (missing PodTemplate).
	ReasonFailedToCreatePods = "FailedToCreatePods"
	// Provisioned=False while an atomic launch is in flight.
	ReasonProvisioning = "Provisioning"
	// BookingExpired=True: the pods did not arrive within the booking time.
	ReasonCapacityReservationTimeExpired = "CapacityReservationTimeExpired"
	MsgCapacityReservationTimeExpired    = "Capacity reservation time is expired"
	// CapacityRevoked=True: a booked node went away before the pods came.
	ReasonCapacityRevoked = "NodeClaimDeleted"
	// Failed=True: a parameter the class reads is malformed
	// (ValidUntilSeconds).
	ReasonInvalidParameter = "InvalidParameter"
)

// setCondition sets a condition, keeping LastTransitionTime when the status
// does not change (meta.SetStatusCondition).
func setCondition(pr *autoscalingv1.ProvisioningRequest, typ string, status metav1.ConditionStatus, reason, msg string, now metav1.Time) {
	meta.SetStatusCondition(&pr.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: pr.Generation, LastTransitionTime: now,
	})
}

func isTrue(pr *autoscalingv1.ProvisioningRequest, typ string) bool {
	return meta.IsStatusConditionTrue(pr.Status.Conditions, typ)
}
