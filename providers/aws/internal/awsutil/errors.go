// Package awsutil holds what every AWS provider package shares: how EC2,
// IAM and SSM errors are classified, values refreshed lazily with a last
// known good fallback, and the tags and filters of the cluster's resources.
package awsutil

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

// IsCapacityCode reports whether an EC2 error code is capacity-class.
func IsCapacityCode(code string) bool { return capacityErrorCodes[code] }

// ErrorCode returns the API error code of err, or "".
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// IsNotFound reports EC2/IAM/SSM "does not exist" errors.
func IsNotFound(err error) bool {
	code := ErrorCode(err)
	return strings.HasSuffix(code, ".NotFound") || strings.HasSuffix(code, "NotFoundException") ||
		code == "NoSuchEntity" || code == "ParameterNotFound" || code == "InvalidInstanceID.Malformed"
}

// IsLaunchTemplateNotFound reports a launch template deleted behind the
// cache's back (by a user or another controller).
func IsLaunchTemplateNotFound(code string) bool {
	return strings.HasPrefix(code, "InvalidLaunchTemplateName.NotFound") || strings.HasPrefix(code, "InvalidLaunchTemplateId.NotFound")
}
