package fakeaws

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

type fleetOverride struct {
	template                    string
	instanceType, subnet, zone  string
	capacityType, reservationID string
	capacityBlock               bool
	order                       int
}

// createFleet implements an instant fleet of TotalTargetCapacity
// instances: overrides are tried in allocation-strategy order (cheapest
// on-demand or spot price first, declared order for reservations), each
// failure is reported in errorSet, and the answer is replayed for a repeated
// client token.
func (s *Server) createFleet(form url.Values) ([]byte, *apiError) {
	if form.Get("Type") != "instant" {
		return nil, &apiError{code: "InvalidParameterValue", message: "fakeaws supports instant fleets only", status: http.StatusBadRequest}
	}
	token := form.Get("ClientToken")
	if out, ok := s.tokens[token]; ok && token != "" {
		return out, nil
	}
	defaultType := form.Get("TargetCapacitySpecification.DefaultTargetCapacityType")
	total, _ := strconv.Atoi(form.Get("TargetCapacitySpecification.TotalTargetCapacity"))
	var overrides []fleetOverride
	for i := 1; ; i++ {
		prefix := fmt.Sprintf("LaunchTemplateConfigs.%d", i)
		name := form.Get(prefix + ".LaunchTemplateSpecification.LaunchTemplateName")
		if name == "" {
			break
		}
		t, ok := s.templates[name]
		if !ok {
			return nil, notFound("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name "+name+", does not exist.")
		}
		resID := t.Data["CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"]
		for j := 1; ; j++ {
			op := fmt.Sprintf("%s.Overrides.%d", prefix, j)
			it := form.Get(op + ".InstanceType")
			if it == "" {
				break
			}
			o := fleetOverride{template: name, instanceType: it, subnet: form.Get(op + ".SubnetId"), zone: form.Get(op + ".AvailabilityZone"), order: len(overrides)}
			if o.zone == "" {
				o.zone = s.subnetZone(o.subnet)
			}
			switch {
			case resID != "":
				o.capacityType, o.reservationID = Reserved, resID
				o.capacityBlock = t.Data["InstanceMarketOptions.MarketType"] == "capacity-block"
			case defaultType == "spot":
				o.capacityType = Spot
			default:
				o.capacityType = OnDemand
			}
			overrides = append(overrides, o)
		}
	}
	if len(overrides) == 0 || total < 1 {
		return nil, &apiError{code: "InvalidParameterValue", message: "no overrides or target capacity", status: http.StatusBadRequest}
	}
	price := func(o fleetOverride) float64 {
		switch o.capacityType {
		case OnDemand:
			if p, ok := s.odPrices[o.instanceType]; ok {
				return p
			}
		case Spot:
			if p, ok := s.spotPrices[Offering{o.instanceType, o.zone, Spot}]; ok {
				return p
			}
		}
		return math.Inf(1)
	}
	if defaultType == "spot" || form.Get("OnDemandOptions.AllocationStrategy") == "lowest-price" {
		sort.SliceStable(overrides, func(i, j int) bool { return price(overrides[i]) < price(overrides[j]) })
	}
	if out, ok := s.gangFleet(form, token, total, overrides); ok {
		return out, nil // MinTargetCapacity: all or nothing (gang.go)
	}
	var errs, launched []node
	count := 0
	for _, o := range overrides {
		if count >= total {
			break
		}
		var got, refused []node
		count, got, refused = s.launchOverride(form, o, count, total)
		launched, errs = append(launched, got...), append(errs, refused...)
	}
	if len(errs) > 0 && len(launched) > 0 {
		s.faults[FaultPartialFleet]++
	}
	return s.fleetAnswer(token, errs, launched), nil
}

// launchOverride launches instances of one override, as CreateFleet does,
// until count reaches limit or the override is refused (reported also
// after a partial launch, as EC2 does). It returns the new count, the
// override's fleetInstanceSet item (none when it launched nothing) and its
// errorSet item (none when it was not refused). The caller holds s.mu.
func (s *Server) launchOverride(form url.Values, o fleetOverride, count, limit int) (int, []node, []node) {
	spec := el("launchTemplateAndOverrides",
		el("launchTemplateSpecification", txt("launchTemplateName", o.template), txt("version", "$Latest")),
		el("overrides", txt("instanceType", o.instanceType), txt("subnetId", o.subnet), txt("availabilityZone", o.zone)))
	lifecycle := txt("lifecycle", map[bool]string{true: "spot", false: "on-demand"}[o.capacityType == Spot])
	var ids, launched, refused []node
	for count < limit {
		if code := s.refusal(o); code != "" {
			s.faults[FaultFleetError]++
			refused = append(refused, item(spec, lifecycle, txt("errorCode", code), txt("errorMessage", fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s).", o.instanceType, o.zone))))
			break
		}
		inst := &Instance{
			ID: s.id("i-"), InstanceType: o.instanceType, Zone: o.zone, SubnetID: o.subnet,
			ImageID: s.templates[o.template].Data["ImageId"], State: "pending", LaunchTemplate: o.template,
			ReservationID: o.reservationID, LaunchTime: s.now(), Tags: tagSpecs(form, "TagSpecification")["instance"],
		}
		if o.capacityType == Spot {
			inst.Lifecycle = "spot"
		}
		s.reserve(o.reservationID, -1)
		s.instances = append(s.instances, inst)
		ids = append(ids, item().withText(inst.ID))
		count++
	}
	if len(ids) > 0 {
		launched = append(launched, item(spec, lifecycle, set("instanceIds", ids...), txt("instanceType", o.instanceType), txt("platform", "Linux/UNIX")))
	}
	return count, launched, refused
}

// refusal returns why an override cannot launch now, or "".
func (s *Server) refusal(o fleetOverride) string {
	if !s.typeOffered(o.instanceType, o.zone) {
		return "Unsupported"
	}
	off := Offering{o.instanceType, o.zone, o.capacityType}
	if code, ok := s.capacityErrors[off]; ok {
		return code
	}
	if o.reservationID != "" {
		for _, r := range s.reservations {
			if r.ID == o.reservationID {
				if r.InstanceType != o.instanceType || r.Zone != o.zone || r.State != "active" {
					return "InvalidParameterValue"
				}
				if r.Available <= 0 {
					return "ReservationCapacityExceeded"
				}
				return ""
			}
		}
		return "InvalidCapacityReservationId.NotFound"
	}
	if limit, ok := s.capacity[off]; ok {
		running := 0
		for _, inst := range s.instances {
			if inst.InstanceType == o.instanceType && inst.Zone == o.zone && inst.ReservationID == "" &&
				(inst.Lifecycle == "spot") == (o.capacityType == Spot) && inst.Live() {
				running++
			}
		}
		if running >= limit {
			return "InsufficientInstanceCapacity"
		}
	}
	return ""
}

func (s *Server) subnetZone(id string) string {
	for _, sn := range s.subnets {
		if sn.ID == id {
			return sn.Zone
		}
	}
	return ""
}
