package options

import (
	"flag"
	"strings"
	"testing"
	"time"

	coreoptions "sigs.k8s.io/karpenter/pkg/operator/options"
)

func parse(args ...string) (*Options, error) {
	fs := &coreoptions.FlagSet{FlagSet: flag.NewFlagSet("karpenter-gpu", flag.ContinueOnError)}
	o := &Options{}
	o.AddFlags(fs)
	return o, o.Parse(fs, args...)
}

// The attempt settings of best-effort-atomic ProvisioningRequests: defaults,
// flags, and clear errors for values that make no sense.
func TestProvisioningRequestAttemptFlags(t *testing.T) {
	o, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if o.ProvisioningRequestLaunchTimeout != 10*time.Minute || o.ProvisioningRequestMaxAttempts != 3 || o.ProvisioningRequestRetryBackoff != 30*time.Second {
		t.Errorf("defaults %s/%d/%s, want 10m/3/30s", o.ProvisioningRequestLaunchTimeout, o.ProvisioningRequestMaxAttempts, o.ProvisioningRequestRetryBackoff)
	}
	o, err = parse("--provisioning-request-launch-timeout=5m", "--provisioning-request-max-attempts=5", "--provisioning-request-retry-backoff=1m")
	if err != nil {
		t.Fatal(err)
	}
	if o.ProvisioningRequestLaunchTimeout != 5*time.Minute || o.ProvisioningRequestMaxAttempts != 5 || o.ProvisioningRequestRetryBackoff != time.Minute {
		t.Errorf("parsed %s/%d/%s, want 5m/5/1m", o.ProvisioningRequestLaunchTimeout, o.ProvisioningRequestMaxAttempts, o.ProvisioningRequestRetryBackoff)
	}
	for _, bad := range []string{"--provisioning-request-launch-timeout=0s", "--provisioning-request-max-attempts=0", "--provisioning-request-retry-backoff=-1s"} {
		flagName := strings.SplitN(bad, "=", 2)[0]
		if _, err := parse(bad); err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("%s: err = %v, want an error naming the flag", bad, err)
		}
	}
}
