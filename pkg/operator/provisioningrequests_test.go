package operator

import (
	"context"
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator/options"
)

// Without a manager (the simulator's case) the CRD counts as absent: auto
// and false leave the controller out, true refuses to start, anything else
// is an error.
func TestProvisioningRequestController(t *testing.T) {
	for _, tt := range []struct {
		mode    string
		wantErr string
	}{
		{mode: ""},
		{mode: "false"},
		{mode: "auto"},
		{mode: "true", wantErr: "CRD is not installed"},
		{mode: "yes", wantErr: "must be auto, true or false"},
	} {
		c, err := provisioningRequestController(context.Background(), Options{ProvisioningRequestOptions: options.ProvisioningRequestOptions{ProvisioningRequests: tt.mode}})
		if c != nil {
			t.Errorf("%q: controller started without the CRD", tt.mode)
		}
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%q: err = %v, want %q", tt.mode, err, tt.wantErr)
		}
	}
}
