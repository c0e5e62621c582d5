package catalog

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"
)

// offerableCapacityTypes are the capacity types priced through PriceSource.
// Reserved offerings need a reservation ID and come from Reservations.
var offerableCapacityTypes = map[string]bool{karpv1.CapacityTypeOnDemand: true, karpv1.CapacityTypeSpot: true}

// NewInstanceTypes builds Karpenter instance types from entries.
//
// Every call returns new objects: a Karpenter InstanceType caches its
// allocatable on first use and must not change afterwards, so callers cache
// the result and rebuild it when prices, availability or options change.
//
// A type is excluded (with a reason) when its entry lacks facts or when no
// offering has a known price; it is never offered at price 0, which
// consolidation would read as free. Offerings the cloud refused are kept with
// Available=false so drift and consolidation still find them.
func NewInstanceTypes(entries []Entry, opts Options) (types []*cloudprovider.InstanceType, excluded []Exclusion) {
	prices := opts.Prices
	if prices == nil {
		prices = NewOnDemandPrices(entries, opts.Region)
	}
	b := &builder{
		opts:          &opts,
		prices:        prices,
		zones:         uniq(opts.Zones),
		capacityTypes: offeredCapacityTypes(opts.CapacityTypes),
	}
	known := make(map[string]bool, len(entries))
	for i := range entries {
		known[entries[i].Name] = true
	}
	b.reservations, excluded = groupReservations(opts.Reservations, known, b.zones)

	seen := make(map[string]bool, len(entries))
	types = make([]*cloudprovider.InstanceType, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if seen[e.Name] {
			excluded = append(excluded, Exclusion{Name: e.Name, Reason: "duplicate entry; the first one is used"})
			continue
		}
		seen[e.Name] = true
		if reason := incompleteReason(e); reason != "" {
			excluded = append(excluded, Exclusion{Name: e.Name, Reason: reason})
			continue
		}
		it, reason, ignored := b.instanceType(e)
		excluded = append(excluded, ignored...)
		if it == nil {
			excluded = append(excluded, Exclusion{Name: e.Name, Reason: reason})
			continue
		}
		types = append(types, it)
	}
	return types, excluded
}

type builder struct {
	opts          *Options
	prices        PriceSource
	zones         []string
	capacityTypes []string
	reservations  map[string][]Reservation // by instance type
}

// instanceType builds one type, or returns why it has no offering. ignored
// reports reservations of the type that could not become offerings.
func (b *builder) instanceType(e *Entry) (it *cloudprovider.InstanceType, reason string, ignored []Exclusion) {
	offerings, reservationIDs, ignored := b.offerings(e)
	if len(offerings) == 0 {
		return nil, b.noOfferingReason(), ignored
	}
	var zones, capacityTypes []string
	for _, o := range offerings {
		zones = appendNew(zones, o.Zone())
		capacityTypes = appendNew(capacityTypes, o.CapacityType())
	}
	p := pods(e, b.opts)
	capacity := capacity(e, b.opts, p)
	return &cloudprovider.InstanceType{
		Name:         e.Name,
		Requirements: requirements(e, b.opts.Region, zones, capacityTypes, reservationIDs),
		Offerings:    offerings,
		Capacity:     capacity,
		Overhead:     overhead(e, b.opts, p, capacity),
	}, "", ignored
}

// offerings creates one offering per zone × capacity type with a known price,
// plus one per reservation that can be priced.
func (b *builder) offerings(e *Entry) (offerings cloudprovider.Offerings, reservationIDs []string, ignored []Exclusion) {
	for _, zone := range b.zones {
		for _, ct := range b.capacityTypes {
			price, ok := b.prices.Price(e.Name, zone, ct)
			if !ok || !validPrice(price) {
				continue
			}
			reqs := offeringRequirements(ct, zone, "")
			offerings = append(offerings, &cloudprovider.Offering{
				Requirements: reqs,
				Price:        price,
				Available:    !b.unavailable(e.Name, zone, ct),
			})
		}
	}
	for _, r := range b.reservations[e.Name] {
		price := r.Price
		if !validPrice(price) {
			od, ok := b.prices.Price(e.Name, r.Zone, karpv1.CapacityTypeOnDemand)
			if !ok || !validPrice(od) {
				ignored = append(ignored, Exclusion{Name: e.Name, Reason: fmt.Sprintf(
					"capacity reservation %q ignored: it has no price and the type no on-demand price in %s", r.ID, r.Zone)})
				continue
			}
			price = od / ReservedPriceDivisor
		}
		reqs := offeringRequirements(karpv1.CapacityTypeReserved, r.Zone, r.ID)
		offerings = append(offerings, &cloudprovider.Offering{
			Requirements: reqs,
			Price:        price,
			// A full reservation stays Available with capacity 0: Karpenter
			// then treats it as not launchable without dropping it.
			Available:           !b.unavailable(e.Name, r.Zone, karpv1.CapacityTypeReserved),
			ReservationCapacity: max(r.Count, 0),
		})
		reservationIDs = append(reservationIDs, r.ID)
	}
	return offerings, reservationIDs, ignored
}

// offeringRequirements pins an offering to its capacity type and zone, which
// Karpenter requires of every offering. On-demand/spot offerings carry
// reservation-id DoesNotExist so they never match a node pinned to a
// reservation; reserved ones carry their ID.
func offeringRequirements(capacityType, zone, reservationID string) scheduling.Requirements {
	r := make(scheduling.Requirements, 3)
	r[karpv1.CapacityTypeLabelKey] = scheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, capacityType)
	r[corev1.LabelTopologyZone] = scheduling.NewRequirement(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, zone)
	if key := cloudprovider.ReservationIDLabel; key != "" {
		if reservationID != "" {
			r[key] = scheduling.NewRequirement(key, corev1.NodeSelectorOpIn, reservationID)
		} else {
			r[key] = scheduling.NewRequirement(key, corev1.NodeSelectorOpDoesNotExist)
		}
	}
	return r
}

func (b *builder) unavailable(instanceType, zone, capacityType string) bool {
	return b.opts.Unavailable != nil && b.opts.Unavailable(instanceType, zone, capacityType)
}

func (b *builder) noOfferingReason() string {
	switch {
	case len(b.zones) == 0:
		return "no zones to offer in"
	case len(b.capacityTypes) == 0:
		return "no on-demand or spot capacity type to offer"
	}
	where := "region " + b.opts.Region
	if b.opts.Region == "" {
		where = "zones " + strings.Join(b.zones, ",")
	}
	return fmt.Sprintf("no known %s price in %s; not offered rather than priced at 0",
		strings.Join(b.capacityTypes, "/"), where)
}

// groupReservations indexes usable reservations by instance type and reports
// the ones that cannot become offerings.
func groupReservations(rs []Reservation, known map[string]bool, zones []string) (map[string][]Reservation, []Exclusion) {
	byType := map[string][]Reservation{}
	ids := map[string]bool{}
	var excluded []Exclusion
	ignore := func(r Reservation, why string) {
		excluded = append(excluded, Exclusion{Name: r.InstanceType, Reason: fmt.Sprintf("capacity reservation %q ignored: %s", r.ID, why)})
	}
	for _, r := range rs {
		switch {
		case r.ID == "" || r.InstanceType == "" || r.Zone == "":
			ignore(r, "id, instance type and zone are required")
		case ids[r.ID]:
			ignore(r, "duplicate reservation id")
		case !known[r.InstanceType]:
			ignore(r, "instance type not in the catalog")
		case len(zones) > 0 && !slices.Contains(zones, r.Zone):
			// The node class cannot launch outside its zones (no subnet).
			ignore(r, fmt.Sprintf("zone %s is not offered", r.Zone))
		default:
			ids[r.ID] = true
			byType[r.InstanceType] = append(byType[r.InstanceType], r)
		}
	}
	return byType, excluded
}

// offeredCapacityTypes filters to on-demand and spot, defaulting to both.
func offeredCapacityTypes(in []string) []string {
	if len(in) == 0 {
		return []string{karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot}
	}
	var out []string
	for _, ct := range in {
		if offerableCapacityTypes[ct] {
			out = appendNew(out, ct)
		}
	}
	return out
}

func uniq(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = appendNew(out, s)
		}
	}
	return out
}

// appendNew appends s unless present; the lists are short (zones, capacity types).
func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
