package cloudprovider

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
	"k8s.io/utils/clock"
)

// UnavailableOfferingsTTL is how long a capacity refusal is remembered.
// Karpenter core keeps no memory of insufficient capacity: without this cache
// it would relaunch the same refused offering on the next loop.
const UnavailableOfferingsTTL = 3 * time.Minute

// UnavailableOfferings remembers offerings the cloud refused for capacity.
// It is shared by the provider and its backend. Expiry is checked against an
// injected clock (not go-cache's wall clock) so the simulator, which runs on a
// fake clock, sees refusals expire in simulated time; go-cache's janitor
// still purges entries in wall time so the map stays bounded.
type UnavailableOfferings struct {
	clock clock.Clock
	ttl   time.Duration
	cache *cache.Cache
	// seq changes on every mark so callers can cache instance types and
	// rebuild them only when availability changed.
	seq atomic.Uint64
}

// NewUnavailableOfferings returns an empty cache.
func NewUnavailableOfferings(clk clock.Clock, ttl time.Duration) *UnavailableOfferings {
	return &UnavailableOfferings{clock: clk, ttl: ttl, cache: cache.New(cache.NoExpiration, 10*time.Minute)}
}

func offeringKey(instanceType, zone, capacityType string) string {
	return fmt.Sprintf("%s:%s:%s", capacityType, instanceType, zone)
}

// MarkUnavailable records a refusal of the offering until now+TTL.
func (u *UnavailableOfferings) MarkUnavailable(instanceType, zone, capacityType string) {
	u.cache.Set(offeringKey(instanceType, zone, capacityType), u.clock.Now().Add(u.ttl), u.ttl+time.Hour)
	u.seq.Add(1)
}

// IsUnavailable reports whether the offering was refused within the TTL.
func (u *UnavailableOfferings) IsUnavailable(instanceType, zone, capacityType string) bool {
	v, ok := u.cache.Get(offeringKey(instanceType, zone, capacityType))
	if !ok {
		return false
	}
	return u.clock.Now().Before(v.(time.Time))
}

// Version changes whenever availability may have changed: on every mark and
// whenever a mark expires (approximated by the TTL bucket of the clock).
func (u *UnavailableOfferings) Version() string {
	if u.cache.ItemCount() == 0 {
		return fmt.Sprintf("%d", u.seq.Load())
	}
	// Expiries are not events; bucketing the clock by a fraction of the TTL
	// makes cached instance types refresh soon after a refusal expires.
	return fmt.Sprintf("%d/%d", u.seq.Load(), u.clock.Now().UnixNano()/int64(u.ttl/6))
}

// Flush forgets every refusal (for example after capacity was added to a
// reservation, or between independent test cases).
func (u *UnavailableOfferings) Flush() {
	u.cache.Flush()
	u.seq.Add(1)
}
