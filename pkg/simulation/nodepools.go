package simulation

// A cluster's own NodePools as the simulation's (simulator --nodepools):
// before anything is simulated, each must be one core accepts and one the
// fleet can launch something for. Without this check such a NodePool
// leaves its pods unschedulable with core's generic message, or, when no
// NodePool can launch anything, the run reports an empty fleet.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// CheckNodePools refuses NodePools a run under cfg could launch nothing
// for, naming each: one core's runtime validation rejects (a NodePool the
// simulation would never see ready), one whose requirements no instance
// type of the catalog satisfies with an offering the fleet has (the
// catalog's types in cfg.Region, priced, in cfg's zones and capacity
// types, as the engine's fake fleet offers them), and one whose minValues
// those types cannot meet. The instance types are built from the catalog
// as the cloud provider builds them (the GPUNodeClass changes their
// capacity, not their labels).
func CheckNodePools(pools []*karpv1.NodePool, cfg Config) error {
	entries := cfg.Catalog
	if entries == nil {
		var err error
		if entries, _, err = catalog.Embedded(); err != nil {
			return fmt.Errorf("loading embedded catalog, %w", err)
		}
	}
	// The fleet's offerings, with its defaults for zones and capacity types.
	info, err := fake.NewFleet(fake.Options{Region: cfg.Region, Zones: cfg.Zones, CapacityTypes: cfg.CapacityTypes, Prices: cfg.Prices}).Offerings(context.Background(), nil)
	if err != nil {
		return err
	}
	its, _ := catalog.NewInstanceTypes(entries, catalog.Options{Region: info.Region, Zones: info.Zones, CapacityTypes: info.CapacityTypes, Prices: info.Prices, TimeSlicingReplicas: 1})
	offered := fmt.Sprintf("%d instance types priced in %s, capacity types %s, zones %s", len(its), info.Region, strings.Join(info.CapacityTypes, ", "), strings.Join(info.Zones, ", "))
	var errs []error
	for _, np := range pools {
		if err := checkNodePool(np, its, offered, info.CapacityTypes); err != nil {
			errs = append(errs, &NodePoolError{NodePool: np.Name, Reason: err.Error()})
		}
	}
	return errors.Join(errs...)
}

// NodePoolError is why CheckNodePools refuses one NodePool (it returns
// them joined: errors.Join).
type NodePoolError struct {
	NodePool, Reason string
}

func (e *NodePoolError) Error() string { return fmt.Sprintf("NodePool %q: %s", e.NodePool, e.Reason) }

func checkNodePool(np *karpv1.NodePool, its []*karpcp.InstanceType, offered string, capacityTypes []string) error {
	if np.Spec.Template.Spec.NodeClassRef == nil {
		return fmt.Errorf("field %q: required", "spec.template.spec.nodeClassRef")
	}
	if err := np.RuntimeValidate(context.Background()); err != nil {
		return fmt.Errorf("field %q: %v", "spec.template", err)
	}
	reqs := scheduling.NewNodeClaimTemplate(np).Requirements
	fit := lo.Filter(its, func(it *karpcp.InstanceType, _ int) bool { return admits(it, reqs) })
	if len(fit) == 0 {
		return fmt.Errorf("field %q: no instance type satisfies them (of the %s)%s", "spec.template.spec.requirements", offered, whyNone(np, its, capacityTypes))
	}
	for _, r := range kscheduling.NewNodeSelectorRequirementsWithMinValues(np.Spec.Template.Spec.Requirements...) {
		min := r.MinValues()
		if min == nil {
			continue
		}
		values := map[string]bool{}
		for _, it := range fit {
			if v := it.Requirements.Get(r.Key); v.Operator() == corev1.NodeSelectorOpIn {
				for _, s := range v.Values() {
					if r.Has(s) {
						values[s] = true
					}
				}
			}
		}
		if len(values) < *min {
			return fmt.Errorf("field %q: %s needs at least %d values (minValues), the instance types the NodePool admits have %d (%s)",
				"spec.template.spec.requirements", r.Key, *min, len(values), strings.Join(lo.Slice(slices.Sorted(maps.Keys(values)), 0, 10), ", "))
		}
	}
	return nil
}

// admits: the type's labels and at least one of its offerings satisfy the
// requirements (core's scheduler drops the other types of a NodePool).
func admits(it *karpcp.InstanceType, reqs kscheduling.Requirements) bool {
	return it.Requirements.Intersects(reqs) == nil && len(it.Offerings.Available().Compatible(reqs)) > 0
}

// whyNone names the requirements that on their own admit no instance type,
// with a hint for the capacity type and zone, which come from the fleet.
func whyNone(np *karpv1.NodePool, its []*karpcp.InstanceType, capacityTypes []string) string {
	var alone []string
	reqs := kscheduling.NewNodeSelectorRequirementsWithMinValues(np.Spec.Template.Spec.Requirements...)
	reqs.Add(kscheduling.NewLabelRequirements(np.Spec.Template.Labels).Values()...)
	for _, key := range slices.Sorted(maps.Keys(reqs.Keys())) {
		one := kscheduling.NewRequirements(reqs.Get(key))
		if lo.SomeBy(its, func(it *karpcp.InstanceType) bool { return admits(it, one) }) {
			continue
		}
		s := reqs.Get(key).String()
		switch key {
		case karpv1.CapacityTypeLabelKey:
			s += fmt.Sprintf(" (the fleet offers %s; spot needs --prices with `aws ec2 describe-spot-price-history` output)", strings.Join(capacityTypes, ", "))
		case corev1.LabelTopologyZone:
			s += " (zones come from --zones or the zones of --prices)"
		}
		alone = append(alone, s)
	}
	if len(alone) == 0 {
		return ": each requirement admits some type, but no type satisfies them all"
	}
	return ": no type has " + strings.Join(alone, "; ")
}
