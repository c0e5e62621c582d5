package catalog

import (
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// LabelCapacityReservationID is the node label (and offering requirement)
// naming the capacity reservation a reserved node launched into.
const LabelCapacityReservationID = v1alpha1.Group + "/capacity-reservation-id"

func init() {
	// Karpenter core reads these package variables to tell reserved
	// offerings apart (one reservation must not be over-launched from two
	// NodePools) and to relax drift checks when a node is demoted from
	// reserved to on-demand. They must be set before any controller runs.
	//
	// The key must also be in karpv1.WellKnownLabels, otherwise Karpenter's
	// offering compatibility check rejects reserved offerings as having an
	// "undefined" label; that registration belongs in
	// pkg/apis/v1alpha1/labels.go.
	cloudprovider.ReservationIDLabel = LabelCapacityReservationID
	cloudprovider.ReservedCapacityLabels.Insert(LabelCapacityReservationID)
}
