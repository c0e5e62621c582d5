package aws

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// capacityErrorCodes are the CreateFleet error codes that mean "no capacity
// for this offering right now" rather than a broken request. An override
// failing with one of them is reported to the provider as Refused, which
// marks exactly that offering unavailable for a while.
var capacityErrorCodes = map[string]bool{
	"InsufficientInstanceCapacity":         true,
	"InsufficientCapacity":                 true,
	"InsufficientHostCapacity":             true,
	"InsufficientReservedInstanceCapacity": true,
	"InsufficientFreeAddressesInSubnet":    true,
	"MaxSpotInstanceCountExceeded":         true,
	"SpotMaxPriceTooLow":                   true,
	"VcpuLimitExceeded":                    true,
	"UnfulfillableCapacity":                true,
	"Unsupported":                          true,
	"ReservationCapacityExceeded":          true,
	"MaxFleetCountExceeded":                true,
	"InstanceLimitExceeded":                true,
}

// isCapacityCode reports whether an EC2 error code is capacity-class.
func isCapacityCode(code string) bool { return capacityErrorCodes[code] }

// errorCode returns the API error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound reports EC2/IAM/SSM "does not exist" errors.
func isNotFound(err error) bool {
	code := errorCode(err)
	return strings.HasSuffix(code, ".NotFound") || strings.HasSuffix(code, "NotFoundException") ||
		code == "NoSuchEntity" || code == "ParameterNotFound" || code == "InvalidInstanceID.Malformed"
}

// isLaunchTemplateNotFound reports a launch template deleted behind the
// cache's back (by a user or another controller).
func isLaunchTemplateNotFound(code string) bool {
	return strings.HasPrefix(code, "InvalidLaunchTemplateName.NotFound") || strings.HasPrefix(code, "InvalidLaunchTemplateId.NotFound")
}
