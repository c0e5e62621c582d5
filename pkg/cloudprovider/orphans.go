package cloudprovider

import (
	"time"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

// DefaultOrphanGracePeriod is how old an instance without a NodeClaim must
// be before a backend's collector terminates it: a launch returns before the
// NodeClaim's status records the provider ID, so younger instances may still
// be claimed.
const DefaultOrphanGracePeriod = 2 * time.Minute

// Orphans is the rule every backend's orphan collector applies (instances
// must be listed before the NodeClaims: a NodeClaim created in between would
// otherwise look absent). A NodeClaim refers to the instance of its provider
// ID; one with no provider ID yet (still launching) also to every instance
// tagged with its name. Once a NodeClaim recorded an instance, another one
// tagged with its name is a duplicate (a launch whose answer was lost, then
// re-launched) and is an orphan. Orphans returns the instances no NodeClaim
// refers to that are running and older than grace, and, for the instances
// a NodeClaim's provider ID refers to, that NodeClaim's name (a backend may
// repair a missing or stale name tag with it).
func Orphans(instances []*Instance, claims []karpv1.NodeClaim, providerID func(*Instance) string, now time.Time, grace time.Duration) (orphans []*Instance, owners map[*Instance]string) {
	byProviderID := map[string]string{}
	launching := map[string]bool{}
	for _, nc := range claims {
		if nc.Status.ProviderID != "" {
			byProviderID[nc.Status.ProviderID] = nc.Name
		} else {
			launching[nc.Name] = true
		}
	}
	owners = map[*Instance]string{}
	for _, inst := range instances {
		if name, ok := byProviderID[providerID(inst)]; ok {
			owners[inst] = name
			continue
		}
		if inst.State == InstanceStateTerminated || now.Sub(inst.LaunchTime) < grace || launching[inst.Tags[TagNodeClaim]] {
			continue
		}
		orphans = append(orphans, inst)
	}
	return orphans, owners
}
