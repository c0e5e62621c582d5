package fakeaws

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
)

// indexed returns the values of prefix.1, prefix.2, ... (Query lists).
func indexed(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := fmt.Sprintf("%s.%d", prefix, i)
		if _, ok := form[k]; !ok {
			return out
		}
		out = append(out, form.Get(k))
	}
}

type filter struct {
	name   string
	values []string
}

func filters(form url.Values) []filter {
	var out []filter
	for i := 1; ; i++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", i))
		if name == "" {
			return out
		}
		out = append(out, filter{name: name, values: indexed(form, fmt.Sprintf("Filter.%d.Value", i))})
	}
}

// matchFilters applies EC2 filters: tag:K, tag-key, and attribute filters
// (with * wildcards).
func matchFilters(fs []filter, attrs map[string]string, tags map[string]string) bool {
	for _, f := range fs {
		switch {
		case strings.HasPrefix(f.name, "tag:"):
			v, ok := tags[strings.TrimPrefix(f.name, "tag:")]
			if !ok || !matchAny(f.values, v) {
				return false
			}
		case f.name == "tag-key":
			found := false
			for _, k := range f.values {
				if _, ok := tags[k]; ok {
					found = true
				}
			}
			if !found {
				return false
			}
		default:
			v, ok := attrs[f.name]
			if !ok || !matchAny(f.values, v) {
				return false
			}
		}
	}
	return true
}

func matchAny(patterns []string, v string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok || p == v {
			return true
		}
	}
	return false
}

// tagSpecs reads TagSpecification.N into resource type -> tags.
func tagSpecs(form url.Values, prefix string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for i := 1; ; i++ {
		rt := form.Get(fmt.Sprintf("%s.%d.ResourceType", prefix, i))
		if rt == "" {
			return out
		}
		tags := map[string]string{}
		for j := 1; ; j++ {
			k, ok := form[fmt.Sprintf("%s.%d.Tag.%d.Key", prefix, i, j)]
			if !ok {
				break
			}
			tags[k[0]] = form.Get(fmt.Sprintf("%s.%d.Tag.%d.Value", prefix, i, j))
		}
		out[rt] = tags
	}
}

// page cuts n items by NextToken, MaxResults and the server's page size.
func (s *Server) page(form url.Values, n int) ([2]int, []node) {
	start, _ := strconv.Atoi(form.Get("NextToken"))
	size := s.pageSize
	if mr, err := strconv.Atoi(form.Get("MaxResults")); err == nil && mr > 0 && (size == 0 || mr < size) {
		size = mr
	}
	bounds, next := paginate(n, start, size)
	if next == "" {
		return bounds, nil
	}
	return bounds, []node{txt("nextToken", next)}
}

// pagedSet is the page of items the request asks for (NextToken,
// MaxResults), as the set name, with the next page's token.
func (s *Server) pagedSet(form url.Values, name string, items []node) []node {
	b, next := s.page(form, len(items))
	return append([]node{set(name, items[b[0]:b[1]]...)}, next...)
}

// selection is the objects a Describe* request asks for: those whose ID is
// among the values of its ID parameter (every ID when it has none) and
// that match its filters.
type selection struct {
	ids []string
	fs  []filter
}

// selectionOf is the request's selection, its IDs listed as idParam.1,
// idParam.2, ...
func selectionOf(form url.Values, idParam string) selection {
	return selection{ids: indexed(form, idParam), fs: filters(form)}
}

// has reports whether the selection holds the object with id, filter
// attributes attrs and tags.
func (q selection) has(id string, attrs, tags map[string]string) bool {
	return (len(q.ids) == 0 || contains(q.ids, id)) && matchFilters(q.fs, attrs, tags)
}

func notFound(code, msg string) *apiError {
	return &apiError{code: code, message: msg, status: http.StatusBadRequest}
}

func (s *Server) ec2Action(action string, form url.Values) ([]node, *apiError) {
	if form.Get("DryRun") == "true" {
		return nil, s.dryRun(action, form)
	}
	if out, aerr, ok := s.placementGroupAction(action, form); ok {
		return out, aerr
	}
	if h, ok := ec2Handlers[action]; ok {
		return h(s, form)
	}
	return nil, &apiError{code: "InvalidAction", message: "fakeaws does not implement " + action, status: http.StatusBadRequest}
}

// ec2Handlers are the EC2 actions fakeaws answers (besides dry runs and
// the placement-group actions), by action name.
var ec2Handlers = map[string]func(*Server, url.Values) ([]node, *apiError){
	"DescribeSubnets":               (*Server).describeSubnets,
	"DescribeSecurityGroups":        (*Server).describeSecurityGroups,
	"DescribeImages":                (*Server).describeImages,
	"DescribeAvailabilityZones":     (*Server).describeAvailabilityZones,
	"DescribeInstanceTypes":         (*Server).describeInstanceTypes,
	"DescribeInstanceTypeOfferings": (*Server).describeInstanceTypeOfferings,
	"DescribeSpotPriceHistory":      (*Server).describeSpotPriceHistory,
	"DescribeCapacityReservations":  (*Server).describeCapacityReservations,
	"DescribeLaunchTemplates":       (*Server).describeLaunchTemplates,
	"CreateLaunchTemplate":          (*Server).createLaunchTemplate,
	"DeleteLaunchTemplate":          (*Server).deleteLaunchTemplate,
	"DescribeInstances":             (*Server).describeInstances,
	"TerminateInstances":            (*Server).terminateInstances,
	"CreateTags":                    (*Server).createTags,
}

func (s *Server) deleteLaunchTemplate(form url.Values) ([]node, *apiError) {
	name := form.Get("LaunchTemplateName")
	t, ok := s.templates[name]
	if !ok {
		return nil, notFound("InvalidLaunchTemplateName.NotFoundException", "launch template "+name+" does not exist")
	}
	delete(s.templates, name)
	return []node{el("launchTemplate", txt("launchTemplateId", t.ID), txt("launchTemplateName", name))}, nil
}

func (s *Server) describeSubnets(form url.Values) ([]node, *apiError) {
	q := selectionOf(form, "SubnetId")
	var items []node
	for _, sn := range s.subnets {
		if !q.has(sn.ID, map[string]string{"subnet-id": sn.ID, "availability-zone": sn.Zone, "vpc-id": sn.VPC}, sn.Tags) {
			continue
		}
		items = append(items, item(txt("subnetId", sn.ID), txt("availabilityZone", sn.Zone), txt("availabilityZoneId", sn.ZoneID),
			num("availableIpAddressCount", sn.FreeIPs), txt("vpcId", sn.VPC), txt("state", "available"), tagSet(sn.Tags)))
	}
	return s.pagedSet(form, "subnetSet", items), nil
}

func (s *Server) describeSecurityGroups(form url.Values) ([]node, *apiError) {
	q := selectionOf(form, "GroupId")
	var items []node
	for _, g := range s.sgs {
		if !q.has(g.ID, map[string]string{"group-id": g.ID, "group-name": g.Name, "vpc-id": g.VPC}, g.Tags) {
			continue
		}
		items = append(items, item(txt("groupId", g.ID), txt("groupName", g.Name), txt("vpcId", g.VPC), tagSet(g.Tags)))
	}
	return s.pagedSet(form, "securityGroupInfo", items), nil
}

func (s *Server) describeImages(form url.Values) ([]node, *apiError) {
	q := selectionOf(form, "ImageId")
	owners := indexed(form, "Owner")
	var items []node
	for _, id := range q.ids {
		found := false
		for _, img := range s.images {
			found = found || img.ID == id
		}
		if !found {
			return nil, notFound("InvalidAMIID.NotFound", "The image id '["+id+"]' does not exist")
		}
	}
	for _, img := range s.images {
		owner := img.Owner
		if owner == "" {
			owner = "self"
		}
		if !q.has(img.ID, map[string]string{"image-id": img.ID, "name": img.Name, "architecture": img.Arch}, img.Tags) ||
			len(owners) > 0 && !contains(owners, owner) {
			continue
		}
		state := img.State
		if state == "" {
			state = "available"
		}
		root := img.RootDevice
		if root == "" {
			root = "/dev/xvda"
		}
		items = append(items, item(txt("imageId", img.ID), txt("name", img.Name), txt("architecture", img.Arch),
			txt("creationDate", img.Created.UTC().Format("2006-01-02T15:04:05.000Z")), txt("rootDeviceName", root),
			txt("imageState", state), txt("imageOwnerId", owner), tagSet(img.Tags)))
	}
	return s.pagedSet(form, "imagesSet", items), nil
}

func (s *Server) zones() []string {
	seen := map[string]bool{}
	var out []string
	for _, sn := range s.subnets {
		if !seen[sn.Zone] {
			seen[sn.Zone] = true
			out = append(out, sn.Zone)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) describeAvailabilityZones(url.Values) ([]node, *apiError) {
	var items []node
	for _, z := range s.zones() {
		items = append(items, item(txt("zoneName", z), txt("zoneState", "available"), txt("regionName", s.region), txt("zoneType", "availability-zone")))
	}
	return []node{set("availabilityZoneInfo", items...)}, nil
}

func (s *Server) describeInstanceTypes(form url.Values) ([]node, *apiError) {
	names := indexed(form, "InstanceType")
	var items []node
	for _, t := range s.types {
		if len(names) > 0 && !contains(names, t.Name) {
			continue
		}
		kids := []node{
			txt("instanceType", t.Name),
			el("processorInfo", set("supportedArchitectures", item().withText(t.Arch))),
			el("vCpuInfo", num("defaultVCpus", t.VCPU)),
			el("memoryInfo", num("sizeInMiB", t.MemoryMiB)),
			el("networkInfo", num("maximumNetworkInterfaces", t.ENIs), num("ipv4AddressesPerInterface", t.IPsPerENI),
				boolean("efaSupported", t.EFA > 0), el("efaInfo", num("maximumEfaInterfaces", t.EFA))),
		}
		if t.GPUCount > 0 || t.GPUName != "" {
			kids = append(kids, el("gpuInfo", set("gpus", item(txt("name", t.GPUName), txt("manufacturer", t.GPUManufacturer),
				num("count", t.GPUCount), el("memoryInfo", num("sizeInMiB", t.GPUMemoryMiB)))),
				num("totalGpuMemoryInMiB", t.GPUCount*t.GPUMemoryMiB)))
		}
		if t.NeuronCount > 0 {
			kids = append(kids, el("neuronInfo", set("neuronDevices", item(txt("name", t.NeuronName), num("count", t.NeuronCount)))))
		}
		items = append(items, item(kids...))
	}
	return s.pagedSet(form, "instanceTypeSet", items), nil
}

func (n node) withText(v string) node { n.text = &v; return n }

func (s *Server) typeOffered(t, zone string) bool {
	zs, ok := s.typeZones[t]
	return !ok || contains(zs, zone)
}

func (s *Server) describeInstanceTypeOfferings(form url.Values) ([]node, *apiError) {
	var items []node
	for _, t := range s.types {
		for _, z := range s.zones() {
			if s.typeOffered(t.Name, z) {
				items = append(items, item(txt("instanceType", t.Name), txt("locationType", "availability-zone"), txt("location", z)))
			}
		}
	}
	return s.pagedSet(form, "instanceTypeOfferingSet", items), nil
}

func (s *Server) describeSpotPriceHistory(form url.Values) ([]node, *apiError) {
	keys := make([]Offering, 0, len(s.spotPrices))
	for k := range s.spotPrices {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].InstanceType+keys[i].Zone < keys[j].InstanceType+keys[j].Zone })
	var items []node
	for _, k := range keys {
		items = append(items, item(txt("instanceType", k.InstanceType), txt("availabilityZone", k.Zone), txt("productDescription", "Linux/UNIX"),
			flt("spotPrice", s.spotPrices[k]), ts("timestamp", s.now())))
	}
	return s.pagedSet(form, "spotPriceHistorySet", items), nil
}

func (s *Server) describeCapacityReservations(form url.Values) ([]node, *apiError) {
	q := selectionOf(form, "CapacityReservationId")
	var items []node
	for _, r := range s.reservations {
		if !q.has(r.ID, map[string]string{"state": r.State, "instance-platform": "Linux/UNIX", "instance-type": r.InstanceType, "availability-zone": r.Zone}, r.Tags) {
			continue
		}
		rtype := "default"
		if r.CapacityBlock {
			rtype = "capacity-block"
		}
		items = append(items, item(txt("capacityReservationId", r.ID), txt("instanceType", r.InstanceType), txt("availabilityZone", r.Zone),
			num("totalInstanceCount", r.Total), num("availableInstanceCount", r.Available), txt("state", r.State),
			txt("reservationType", rtype), txt("instanceMatchCriteria", "targeted"), txt("tenancy", "default"),
			txt("instancePlatform", "Linux/UNIX"), tagSet(r.Tags)))
	}
	return s.pagedSet(form, "capacityReservationSet", items), nil
}

func (s *Server) describeLaunchTemplates(form url.Values) ([]node, *apiError) {
	names := indexed(form, "LaunchTemplateName")
	var items []node
	for _, n := range names {
		if _, ok := s.templates[n]; !ok {
			return nil, notFound("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
	}
	keys := make([]string, 0, len(s.templates))
	for k := range s.templates {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fs := filters(form)
	for _, k := range keys {
		t := s.templates[k]
		if len(names) > 0 && !contains(names, k) {
			continue
		}
		if !matchFilters(fs, map[string]string{"launch-template-name": t.Name}, t.Tags) {
			continue
		}
		items = append(items, item(txt("launchTemplateId", t.ID), txt("launchTemplateName", t.Name), num("latestVersionNumber", 1), num("defaultVersionNumber", 1), tagSet(t.Tags)))
	}
	return s.pagedSet(form, "launchTemplates", items), nil
}

func (s *Server) createLaunchTemplate(form url.Values) ([]node, *apiError) {
	name := form.Get("LaunchTemplateName")
	if _, ok := s.templates[name]; ok {
		return nil, notFound("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	data := map[string]string{}
	for k, v := range form {
		if rest, ok := strings.CutPrefix(k, "LaunchTemplateData."); ok {
			data[rest] = v[0]
		}
	}
	t := &LaunchTemplate{ID: s.id("lt-"), Name: name, Data: data, Tags: tagSpecs(form, "TagSpecification")["launch-template"]}
	s.templates[name] = t
	return []node{el("launchTemplate", txt("launchTemplateId", t.ID), txt("launchTemplateName", name), num("latestVersionNumber", 1), num("defaultVersionNumber", 1))}, nil
}

// advance moves instances along their lifecycle: each describe sees a
// pending instance once, then running; shutting-down becomes terminated.
func advance(inst *Instance) {
	switch inst.State {
	case "pending":
		inst.State = "running"
	case "shutting-down":
		inst.State = "terminated"
	}
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func instanceNode(inst *Instance) node {
	kids := []node{
		txt("instanceId", inst.ID), txt("instanceType", inst.InstanceType), txt("imageId", inst.ImageID),
		el("instanceState", num("code", stateCodes[inst.State]), txt("name", inst.State)),
		el("placement", txt("availabilityZone", inst.Zone), txt("tenancy", "default")),
		txt("subnetId", inst.SubnetID), ts("launchTime", inst.LaunchTime), tagSet(inst.Tags),
	}
	kids = append(kids, optional(txt("instanceLifecycle", inst.Lifecycle))...)
	kids = append(kids, optional(txt("capacityReservationId", inst.ReservationID))...)
	return item(kids...)
}

func (s *Server) describeInstances(form url.Values) ([]node, *apiError) {
	q := selectionOf(form, "InstanceId")
	if len(q.ids) > 0 && form.Get("MaxResults") != "" {
		return nil, &apiError{code: "InvalidParameterCombination", message: "The parameter instancesSet cannot be used with the parameter maxResults", status: http.StatusBadRequest}
	}
	for _, id := range q.ids {
		if s.instance(id) == nil {
			return nil, notFound("InvalidInstanceID.NotFound", "The instance ID '"+id+"' does not exist")
		}
	}
	var matched []*Instance
	for _, inst := range s.instances {
		if q.has(inst.ID, map[string]string{"instance-id": inst.ID, "instance-state-name": inst.State, "instance-type": inst.InstanceType, "availability-zone": inst.Zone}, inst.Tags) {
			matched = append(matched, inst)
		}
	}
	b, next := s.page(form, len(matched))
	var items []node
	for _, inst := range matched[b[0]:b[1]] {
		items = append(items, item(txt("reservationId", "r-"+strings.TrimPrefix(inst.ID, "i-")), txt("ownerId", "123456789012"), set("instancesSet", instanceNode(inst))))
		advance(inst)
	}
	return append([]node{set("reservationSet", items...)}, next...), nil
}

func (s *Server) instance(id string) *Instance {
	for _, inst := range s.instances {
		if inst.ID == id {
			return inst
		}
	}
	return nil
}

func (s *Server) terminateInstances(form url.Values) ([]node, *apiError) {
	ids := indexed(form, "InstanceId")
	for _, id := range ids {
		if s.instance(id) == nil {
			return nil, notFound("InvalidInstanceID.NotFound", "The instance ID '"+id+"' does not exist")
		}
	}
	var items []node
	for _, id := range ids {
		inst := s.instance(id)
		prev := inst.State
		if inst.Live() {
			inst.State = "shutting-down"
			for _, r := range s.reservations {
				if r.ID == inst.ReservationID && r.Available < r.Total {
					r.Available++
				}
			}
		}
		items = append(items, item(txt("instanceId", id),
			el("previousState", num("code", stateCodes[prev]), txt("name", prev)),
			el("currentState", num("code", stateCodes[inst.State]), txt("name", inst.State))))
	}
	return []node{set("instancesSet", items...)}, nil
}

func (s *Server) createTags(form url.Values) ([]node, *apiError) {
	ids := indexed(form, "ResourceId")
	for _, id := range ids {
		if inst := s.instance(id); inst != nil {
			if inst.Tags == nil {
				inst.Tags = map[string]string{}
			}
			for j := 1; ; j++ {
				k, ok := form[fmt.Sprintf("Tag.%d.Key", j)]
				if !ok {
					break
				}
				inst.Tags[k[0]] = form.Get(fmt.Sprintf("Tag.%d.Value", j))
			}
		}
	}
	return []node{boolean("return", true)}, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
