package fakeaws

// Instant fleets with MinTargetCapacity (OnDemandOptions or SpotOptions),
// SingleAvailabilityZone, SingleInstanceType and a cluster placement group
// (Overrides.N.Placement.GroupName), as EC2 documents them: fewer than
// MinTargetCapacity instances launchable means none launch; single zone and
// type restrict the whole fleet to one of each. A placement group's room is
// set with SetPlacementGroupCapacity.

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/samber/lo"
)

// gangState is the placement group bookkeeping, kept beside the Server and
// guarded by its mutex.
type gangState struct {
	room    map[string]int    // placement group -> instances it holds
	members map[string]string // instance ID -> placement group
	// ignoreMin: serve fleets as if they had no MinTargetCapacity.
	ignoreMin bool
	// groups are the placement groups that exist (created, or given a
	// capacity by SetPlacementGroupCapacity).
	groups map[string]*PlacementGroup
}

// PlacementGroup is a placement group of the endpoint.
type PlacementGroup struct {
	Name, ID, Strategy string
	Tags               map[string]string
}

var gangStates sync.Map // *Server -> *gangState

func (s *Server) gangs() *gangState {
	g, _ := gangStates.LoadOrStore(s, &gangState{room: map[string]int{}, members: map[string]string{}, groups: map[string]*PlacementGroup{}})
	return g.(*gangState)
}

// SetPlacementGroupCapacity limits how many live instances a placement
// group holds (n < 0: unlimited). Past it EC2 answers
// InsufficientInstanceCapacity for the group.
func (s *Server) SetPlacementGroupCapacity(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.gangs().groups[name]; !ok {
		s.gangs().groups[name] = &PlacementGroup{Name: name, ID: s.id("pg-"), Strategy: "cluster"}
	}
	if n < 0 {
		delete(s.gangs().room, name)
		return
	}
	s.gangs().room[name] = n
}

// PlacementGroups returns the placement groups that exist, by name.
func (s *Server) PlacementGroups() map[string]PlacementGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]PlacementGroup{}
	for n, g := range s.gangs().groups {
		c := *g
		c.Tags = cloneMap(g.Tags)
		out[n] = c
	}
	return out
}

// placementGroupAction serves CreatePlacementGroup, DescribePlacementGroups
// and DeletePlacementGroup as EC2 does (a duplicate name, an unknown group
// and a group that still holds instances are errors); handled is false for
// any other action. The caller holds s.mu.
func (s *Server) placementGroupAction(action string, form url.Values) (out []node, aerr *apiError, handled bool) {
	g := s.gangs()
	render := func(pg *PlacementGroup) []node {
		return []node{txt("groupName", pg.Name), txt("groupId", pg.ID), txt("strategy", pg.Strategy), txt("state", "available"), tagSet(pg.Tags)}
	}
	switch action {
	case "CreatePlacementGroup":
		name := form.Get("GroupName")
		if name == "" {
			return nil, &apiError{code: "MissingParameter", message: "The request must contain the parameter GroupName", status: http.StatusBadRequest}, true
		}
		if _, ok := g.groups[name]; ok {
			return nil, &apiError{code: "InvalidPlacementGroup.Duplicate", message: fmt.Sprintf("The placement group '%s' already exists.", name), status: http.StatusBadRequest}, true
		}
		pg := &PlacementGroup{Name: name, ID: s.id("pg-"), Strategy: form.Get("Strategy"), Tags: tagSpecs(form, "TagSpecification")["placement-group"]}
		g.groups[name] = pg
		return []node{el("placementGroup", render(pg)...)}, nil, true
	case "DescribePlacementGroups":
		var items []node
		names := slices.Sorted(maps.Keys(g.groups))
		for _, name := range names {
			pg := g.groups[name]
			if !matchesTagFilters(form, pg.Tags) {
				continue
			}
			items = append(items, item(render(pg)...))
		}
		return []node{set("placementGroupSet", items...)}, nil, true
	case "DeletePlacementGroup":
		name := form.Get("GroupName")
		if _, ok := g.groups[name]; !ok {
			return nil, notFound("InvalidPlacementGroup.Unknown", fmt.Sprintf("The Placement Group '%s' is unknown.", name)), true
		}
		for _, inst := range s.instances {
			if g.members[inst.ID] == name && inst.State != "terminated" {
				return nil, &apiError{code: "InvalidPlacementGroup.InUse", message: fmt.Sprintf("There are instances in placement group %s", name), status: http.StatusBadRequest}, true
			}
		}
		delete(g.groups, name)
		delete(g.room, name)
		return []node{txt("return", "true")}, nil, true
	}
	return nil, nil, false
}

// matchesTagFilters applies the request's tag:KEY filters to tags.
func matchesTagFilters(form url.Values, tags map[string]string) bool {
	for i := 1; ; i++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", i))
		if name == "" {
			return true
		}
		key, ok := strings.CutPrefix(name, "tag:")
		if !ok {
			continue
		}
		want := form.Get(fmt.Sprintf("Filter.%d.Value.1", i))
		if tags[key] != want {
			return false
		}
	}
}

// IgnoreMinTargetCapacity makes the endpoint misbehave as an endpoint
// that does not know MinTargetCapacity: fleets launch whatever they can,
// so a gang can get a partial answer. Off by default.
func (s *Server) IgnoreMinTargetCapacity(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gangs().ignoreMin = on
}

// PlacementGroupOf returns the placement group an instance launched into.
func (s *Server) PlacementGroupOf(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gangs().members[id]
}

// gangFleet serves a CreateFleet with MinTargetCapacity; handled is false
// for any other fleet (createFleet's own path). overrides are in allocation
// order; the caller holds s.mu.
func (s *Server) gangFleet(form url.Values, token string, total int, overrides []fleetOverride) (out []byte, handled bool) {
	opts := "OnDemandOptions"
	if form.Get("TargetCapacitySpecification.DefaultTargetCapacityType") == "spot" {
		opts = "SpotOptions"
	}
	minCount, _ := strconv.Atoi(form.Get(opts + ".MinTargetCapacity"))
	g := s.gangs()
	if minCount <= 0 || g.ignoreMin {
		return nil, false
	}
	group := form.Get("LaunchTemplateConfigs.1.Overrides.1.Placement.GroupName")
	if _, ok := g.groups[group]; group != "" && !ok {
		err := item(txt("errorCode", "InvalidPlacementGroup.Unknown"), txt("errorMessage", fmt.Sprintf("The Placement Group '%s' is unknown.", group)))
		return s.fleetAnswer(token, []node{err}, nil), true
	}
	pgRoom := total
	if n, limited := g.room[group]; limited && group != "" {
		used := 0
		for _, inst := range s.instances {
			if g.members[inst.ID] == group && inst.Live() {
				used++
			}
		}
		pgRoom = max(0, n-used)
	}
	sets := [][]fleetOverride{overrides}
	if form.Get(opts+".SingleAvailabilityZone") == "true" {
		sets = splitOverrides(sets, func(o fleetOverride) string { return o.zone })
	}
	if form.Get(opts+".SingleInstanceType") == "true" {
		sets = splitOverrides(sets, func(o fleetOverride) string { return o.instanceType })
	}
	var errs []node
	for _, try := range sets {
		before := len(s.instances)
		var launched []node
		count := 0
		for _, o := range try {
			var got, refused []node
			count, got, refused = s.launchOverride(form, o, count, min(total, pgRoom))
			launched, errs = append(launched, got...), append(errs, refused...)
		}
		if count >= minCount {
			if group != "" {
				for _, inst := range s.instances[before:] {
					g.members[inst.ID] = group
				}
			}
			return s.fleetAnswer(token, nil, launched), true
		}
		// Below the minimum: nothing of this try stays.
		for _, inst := range s.instances[before:] {
			s.reserve(inst.ReservationID, +1)
		}
		s.instances = s.instances[:before]
		if pgRoom < minCount {
			errs = append(errs, item(txt("errorCode", "InsufficientInstanceCapacity"),
				txt("errorMessage", fmt.Sprintf("Placement group %s has room for %d instances; the fleet needs at least %d.", group, pgRoom, minCount))))
		}
	}
	return s.fleetAnswer(token, errs, nil), true
}

// fleetAnswer is a CreateFleet response, remembered for its client token.
func (s *Server) fleetAnswer(token string, errs, launched []node) []byte {
	out := document("CreateFleetResponse", ec2Namespace, txt("requestId", "req-fake"), txt("fleetId", s.id("fleet-")),
		set("errorSet", errs...), set("fleetInstanceSet", launched...))
	if token != "" {
		s.tokens[token] = out
	}
	return out
}

// reserve adds delta to a reservation's available count.
func (s *Server) reserve(id string, delta int32) {
	if id == "" {
		return
	}
	for _, r := range s.reservations {
		if r.ID == id {
			r.Available += delta
		}
	}
}

// splitOverrides splits every set by key, keeping first-seen order.
func splitOverrides(sets [][]fleetOverride, key func(fleetOverride) string) [][]fleetOverride {
	return lo.FlatMap(sets, func(set []fleetOverride, _ int) [][]fleetOverride { return lo.PartitionBy(set, key) })
}
