package catalog

import "github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"

// LabelCapacityReservationID names the capacity reservation a reserved node
// launched into. It is registered with Karpenter core (as its
// ReservationIDLabel and a well-known label) in pkg/apis/v1alpha1.
const LabelCapacityReservationID = v1alpha1.LabelCapacityReservationID
