package cloudprovider

import (
	"strconv"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Gang membership of a NodeClaim: the ProvisioningRequest controller
// (pkg/controllers/provisioningrequest) labels and annotates every
// NodeClaim of a gang attempt, so a backend that launches whole gangs can
// gather the attempt's launches into one all-or-nothing call.
const (
	// LabelGangRequest is the UID of the ProvisioningRequest the NodeClaim
	// was launched for.
	LabelGangRequest = v1alpha1.Group + "/provisioning-request"
	// LabelGangAttempt is the request's launch attempt.
	LabelGangAttempt = v1alpha1.Group + "/provisioning-request-attempt"
	// AnnotationGangSize is how many NodeClaims the attempt created.
	AnnotationGangSize = v1alpha1.Group + "/gang-size"
	// MaxGangSize bounds the gang size a backend accepts from the annotation.
	MaxGangSize = 10000
)

// Gang identifies the attempt a NodeClaim belongs to.
type Gang struct {
	// Key is the request's UID and attempt.
	Key  string
	Size int
}

// GangOf returns the gang of a NodeClaim; false when it is not part of one
// of two or more (a missing or malformed size is no gang: the NodeClaim
// launches on its own).
func GangOf(nc *karpv1.NodeClaim) (Gang, bool) {
	if nc == nil {
		return Gang{}, false
	}
	uid, attempt := nc.Labels[LabelGangRequest], nc.Labels[LabelGangAttempt]
	size, err := strconv.Atoi(nc.Annotations[AnnotationGangSize])
	if uid == "" || attempt == "" || err != nil || size < 2 || size > MaxGangSize {
		return Gang{}, false
	}
	return Gang{Key: uid + "/" + attempt, Size: size}, true
}

// GangPlacementGroup is the placement group rule of a gang, the same for
// every backend: none when the node class says None, the node class's own
// group when it names one (used as it is: neither created nor deleted),
// else a group of the backend's own (create is true: the backend names,
// creates and later deletes it) when the gang has instance types and every
// one supports EFA, else none. Reserved capacity is used where it was
// reserved: backends ask only for launches that are not into a reservation.
func GangPlacementGroup(nodeClass *v1alpha1.GPUNodeClass, instanceTypes []string, efaCapable func(instanceType string) bool) (name string, create bool) {
	if nodeClass != nil {
		if nodeClass.Spec.Gang.PlacementGroup == v1alpha1.GangPlacementNone {
			return "", false
		}
		if name := nodeClass.Spec.Gang.PlacementGroupName; name != nil && *name != "" {
			return *name, false
		}
	}
	if len(instanceTypes) == 0 {
		return "", false
	}
	for _, it := range instanceTypes {
		if !efaCapable(it) {
			return "", false
		}
	}
	return "", true
}
