package fake

import (
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
)

// OrphanOptions completes the options of the orphan collector
// (pkg/controllers/orphans) for this fleet: its instances, on the fleet's
// clock unless o sets one.
func (f *Fleet) OrphanOptions(o orphans.Options) orphans.Options {
	o.Instances = f
	if o.Clock == nil {
		o.Clock = f.clock
	}
	return o
}
