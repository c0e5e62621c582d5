// Package fakeaws is an in-process AWS endpoint for tests: an HTTP server on
// 127.0.0.1 that speaks the wire protocols the production aws-sdk-go-v2
// clients use — the EC2 Query protocol (form-encoded Action=..., XML answers
// in the EC2 namespace), the IAM Query protocol, and the JSON 1.1 protocols
// of SSM and the Pricing API — over a small in-memory inventory (subnets,
// security groups, images, instance types, capacity reservations, launch
// templates, instances), with fault injection: capacity errors on chosen
// offerings, per-offering capacity limits, throttling N times per action,
// injected API errors (4xx or 5xx), answers lost after the call took effect
// (a 500, a connection reset or a delay past the client's timeout) and a
// server-side page size; Faults counts the faults served, by kind.
//
// Clients reach it through their endpoint override (BaseEndpoint), so the
// code under test is the real SDK: serializers, signing, retries,
// deserializers and paginators.
package fakeaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samber/lo"
)

// Capacity types as EC2 Fleet and Karpenter name them.
const (
	OnDemand = "on-demand"
	Spot     = "spot"
	Reserved = "reserved"
)

// Offering is an instance type in a zone with a capacity type.
type Offering struct{ InstanceType, Zone, CapacityType string }

// Subnet is a subnet in the inventory.
type Subnet struct {
	ID, Zone, ZoneID, VPC string
	FreeIPs               int32
	Tags                  map[string]string
}

// SecurityGroup is a security group in the inventory.
type SecurityGroup struct {
	ID, Name, VPC string
	Tags          map[string]string
}

// Image is an AMI in the inventory.
type Image struct {
	ID, Name   string
	Arch       string // x86_64 or arm64
	Owner      string // account id, or "amazon"
	Created    time.Time
	RootDevice string // default /dev/xvda
	State      string // default available
	Tags       map[string]string
}

// InstanceType is a DescribeInstanceTypes entry.
type InstanceType struct {
	Name            string
	Arch            string // x86_64 or arm64
	VCPU            int32
	MemoryMiB       int64
	GPUName         string
	GPUManufacturer string
	GPUCount        int32
	GPUMemoryMiB    int32
	NeuronName      string
	NeuronCount     int32
	EFA             int32
	ENIs, IPsPerENI int32
}

// Reservation is a capacity reservation (ODCR or capacity block).
type Reservation struct {
	ID, InstanceType, Zone string
	Total, Available       int32
	CapacityBlock          bool
	State                  string // default active
	Tags                   map[string]string
}

// Instance is a launched instance.
type Instance struct {
	ID, InstanceType, Zone, SubnetID, ImageID string
	State                                     string // pending, running, shutting-down, terminated
	Lifecycle                                 string // "spot" or ""
	ReservationID                             string
	LaunchTemplate                            string
	LaunchTime                                time.Time
	Tags                                      map[string]string
}

// LaunchTemplate is a created launch template; Data holds the raw request
// fields below LaunchTemplateData (e.g. "UserData", "ImageId",
// "MetadataOptions.HttpTokens", "BlockDeviceMapping.1.Ebs.VolumeSize").
type LaunchTemplate struct {
	ID, Name string
	Data     map[string]string
	Tags     map[string]string
}

// InstanceProfile is an IAM instance profile.
type InstanceProfile struct {
	Name, Path string
	Roles      []string
	Tags       map[string]string
}

// Request is a recorded API call: the action (or JSON target) and its
// form fields (or JSON body, in Form["body"]).
type Request struct {
	Service string // IAM action prefix: ec2, iam, ssm, pricing
	Action  string
	Form    url.Values
}

// Inventory is the server's initial state.
type Inventory struct {
	Region         string
	Subnets        []Subnet
	SecurityGroups []SecurityGroup
	Images         []Image
	InstanceTypes  []InstanceType
	// TypeZones lists the zones each type is offered in; a type without an
	// entry is offered in every zone of Subnets.
	TypeZones      map[string][]string
	OnDemandPrices map[string]float64   // type -> USD/h (Pricing API and lowest-price choice)
	SpotPrices     map[Offering]float64 // (type, zone, "spot") -> USD/h
	Reservations   []Reservation
	SSMParameters  map[string]string
	Roles          []string
	Profiles       []InstanceProfile
	// Capacity limits the running instances of an offering; offerings not
	// listed are unlimited (reserved offerings are limited by their
	// reservation).
	Capacity map[Offering]int
}

// apiError is an injected failure.
type apiError struct {
	code, message string
	status        int
}

// Fault kinds counted by Faults.
const (
	FaultThrottle        = "throttle"         // RequestLimitExceeded / ThrottlingException
	FaultAPIError        = "api-error"        // injected 4xx error (Fail)
	FaultServerError     = "server-error"     // injected 5xx error, the call had no effect (FailStatus)
	FaultLostResponse    = "lost-response"    // the call took effect, answered 500 InternalError (LoseResponses)
	FaultConnectionReset = "connection-reset" // the call took effect, the connection was reset (ResetConnections)
	FaultSlowResponse    = "slow-response"    // the call took effect, answered late (Delay)
	FaultFleetError      = "fleet-error"      // an override refused in a CreateFleet errorSet
	FaultPartialFleet    = "partial-fleet"    // a CreateFleet answer with both instances and errors
)

// responseFault alters the answer of a call that was carried out.
type responseFault struct {
	kind  string
	delay time.Duration
}

// Server is the fake endpoint.
type Server struct {
	URL string
	srv *httptest.Server

	mu             sync.Mutex
	now            func() time.Time
	region         string
	subnets        []Subnet
	sgs            []SecurityGroup
	images         []Image
	types          []InstanceType
	typeZones      map[string][]string
	odPrices       map[string]float64
	spotPrices     map[Offering]float64
	reservations   []*Reservation
	ssm            map[string]string
	roles          map[string]bool
	profiles       map[string]*InstanceProfile
	capacity       map[Offering]int
	capacityErrors map[Offering]string
	throttles      map[string]int
	failures       map[string][]apiError
	respFaults     map[string][]responseFault
	faults         map[string]int // served, by kind
	pageSize       int
	templates      map[string]*LaunchTemplate
	instances      []*Instance
	tokens         map[string][]byte // fleet client token -> response
	requests       []Request
	seq            int
	sqs            sqsState // sqs.go
}

// New starts a server on 127.0.0.1 with the inventory; Close stops it.
func New(inv Inventory) *Server {
	s := &Server{
		now:            time.Now,
		region:         inv.Region,
		subnets:        inv.Subnets,
		sgs:            inv.SecurityGroups,
		images:         inv.Images,
		types:          inv.InstanceTypes,
		typeZones:      inv.TypeZones,
		odPrices:       inv.OnDemandPrices,
		spotPrices:     inv.SpotPrices,
		ssm:            inv.SSMParameters,
		roles:          map[string]bool{},
		profiles:       map[string]*InstanceProfile{},
		capacity:       map[Offering]int{},
		capacityErrors: map[Offering]string{},
		throttles:      map[string]int{},
		failures:       map[string][]apiError{},
		respFaults:     map[string][]responseFault{},
		faults:         map[string]int{},
		templates:      map[string]*LaunchTemplate{},
		tokens:         map[string][]byte{},
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	for _, r := range inv.Reservations {
		r := r
		if r.State == "" {
			r.State = "active"
		}
		s.reservations = append(s.reservations, &r)
	}
	for _, r := range inv.Roles {
		s.roles[r] = true
	}
	for _, p := range inv.Profiles {
		p := p
		s.profiles[p.Name] = &p
	}
	for k, v := range inv.Capacity {
		s.capacity[k] = v
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.srv.URL
	return s
}

// Close stops the server; a nil server (a suite that failed before starting
// it) is left as is.
func (s *Server) Close() {
	if s != nil {
		s.srv.Close()
	}
}

// SetClock replaces the server's clock (launch times, spot price stamps).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// InsufficientCapacity makes launches on an offering fail with code (default
// InsufficientInstanceCapacity) until cleared with code "-".
func (s *Server) InsufficientCapacity(o Offering, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch code {
	case "-":
		delete(s.capacityErrors, o)
	case "":
		s.capacityErrors[o] = "InsufficientInstanceCapacity"
	default:
		s.capacityErrors[o] = code
	}
}

// SetCapacity limits the running instances of an offering (-1: unlimited).
func (s *Server) SetCapacity(o Offering, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		delete(s.capacity, o)
		return
	}
	s.capacity[o] = n
}

// Throttle makes the next n calls of action fail with RequestLimitExceeded.
func (s *Server) Throttle(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttles[action] = n
}

// Fail makes the next n calls of action fail with an error code.
func (s *Server) Fail(action, code, message string, n int) {
	s.FailStatus(action, code, message, http.StatusBadRequest, n)
}

// FailStatus makes the next n calls of action fail with an error code and
// HTTP status (e.g. 500 InternalError, 503 Unavailable) before they take
// effect.
func (s *Server) FailStatus(action, code, message string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[action] = append(s.failures[action], apiError{code: code, message: message, status: status})
	}
}

// LoseResponses makes the next n successful calls of action take effect
// but answer 500 InternalError, as when EC2 acted and the answer was lost:
// the client's retry must be idempotent.
func (s *Server) LoseResponses(action string, n int) {
	s.addResponseFaults(action, FaultLostResponse, 0, n)
}

// ResetConnections makes the next n successful calls of action take effect
// and then reset the connection without an answer.
func (s *Server) ResetConnections(action string, n int) {
	s.addResponseFaults(action, FaultConnectionReset, 0, n)
}

// Delay makes the next n calls of action take effect and answer after d; a
// client whose timeout is shorter sees a timeout and retries.
func (s *Server) Delay(action string, d time.Duration, n int) {
	s.addResponseFaults(action, FaultSlowResponse, d, n)
}

func (s *Server) addResponseFaults(action, kind string, d time.Duration, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.respFaults[action] = append(s.respFaults[action], responseFault{kind: kind, delay: d})
	}
}

// ClearFaults disarms every pending throttle, injected error and response
// fault (capacity errors and limits stay).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttles = map[string]int{}
	s.failures = map[string][]apiError{}
	s.respFaults = map[string][]responseFault{}
}

// Faults returns how many faults of each kind (Fault*) were served.
func (s *Server) Faults() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.faults))
	for k, v := range s.faults {
		out[k] = v
	}
	return out
}

// SetPageSize caps every paginated answer at n items (0: no cap).
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Requests returns the recorded calls of action ("" for all).
func (s *Server) Requests(action string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if action == "" || r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests forgets recorded calls.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Instances returns copies of all instances, in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.instances))
	for _, i := range s.instances {
		c := *i
		c.Tags = cloneMap(i.Tags)
		out = append(out, c)
	}
	return out
}

// Live reports whether the instance is neither terminated nor shutting down.
func (i *Instance) Live() bool { return i.State != "terminated" && i.State != "shutting-down" }

// LiveInstances returns the instances that are Live.
func (s *Server) LiveInstances() []Instance {
	return lo.Filter(s.Instances(), func(i Instance, _ int) bool { return i.Live() })
}

// AddInstance adds an instance directly (e.g. one leaked by a crash).
func (s *Server) AddInstance(inst Instance) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if inst.ID == "" {
		inst.ID = s.id("i-")
	}
	if inst.State == "" {
		inst.State = "running"
	}
	if inst.LaunchTime.IsZero() {
		inst.LaunchTime = s.now()
	}
	inst.Tags = cloneMap(inst.Tags)
	s.instances = append(s.instances, &inst)
	return inst.ID
}

// LaunchTemplates returns copies of the launch templates, by name.
func (s *Server) LaunchTemplates() map[string]LaunchTemplate {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]LaunchTemplate{}
	for n, t := range s.templates {
		out[n] = LaunchTemplate{ID: t.ID, Name: t.Name, Data: cloneMap(t.Data), Tags: cloneMap(t.Tags)}
	}
	return out
}

// DeleteLaunchTemplates removes every launch template (as a user might).
func (s *Server) DeleteLaunchTemplates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.templates = map[string]*LaunchTemplate{}
}

// Reservation returns a reservation's current state.
func (s *Server) Reservation(id string) (Reservation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reservations {
		if r.ID == id {
			return *r, true
		}
	}
	return Reservation{}, false
}

// InstanceProfiles returns copies of the instance profiles.
func (s *Server) InstanceProfiles() map[string]InstanceProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]InstanceProfile{}
	for n, p := range s.profiles {
		c := *p
		c.Roles = append([]string(nil), p.Roles...)
		out[n] = c
	}
	return out
}

// SetSSMParameter sets (or with value "" deletes) an SSM parameter.
func (s *Server) SetSSMParameter(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ssm == nil {
		s.ssm = map[string]string{}
	}
	if value == "" {
		delete(s.ssm, name)
		return
	}
	s.ssm[name] = value
}

func (s *Server) id(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%017x", prefix, s.seq)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// handle serves a request and applies the response fault armed for its
// action, if any: the call has taken effect, its answer is lost, reset or
// late.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	target := r.Header.Get("X-Amz-Target")
	action := target[strings.LastIndex(target, ".")+1:]
	if target == "" {
		form, _ := url.ParseQuery(string(body))
		action = form.Get("Action")
	}
	s.mu.Lock()
	pending := len(s.respFaults[action]) > 0
	s.mu.Unlock()
	if !pending {
		s.serve(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.serve(rec, r)
	s.mu.Lock()
	var f responseFault
	if q := s.respFaults[action]; len(q) > 0 && (rec.Code == http.StatusOK || q[0].kind == FaultSlowResponse) {
		f, s.respFaults[action] = q[0], q[1:]
		s.faults[f.kind]++
	}
	s.mu.Unlock()
	switch f.kind {
	case FaultLostResponse:
		e := apiError{code: "InternalError", message: "An internal error has occurred.", status: http.StatusInternalServerError}
		if target != "" {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Header().Set("X-Amzn-ErrorType", e.code)
			w.WriteHeader(e.status)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.message})
			return
		}
		writeEC2Error(w, e)
		return
	case FaultConnectionReset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tcp, ok := conn.(*net.TCPConn); ok {
					_ = tcp.SetLinger(0) // RST, not FIN
				}
				_ = conn.Close()
				return
			}
		}
	case FaultSlowResponse:
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// serve dispatches by protocol: JSON 1.0 (SQS, sqs.go), JSON 1.1
// (X-Amz-Target) or Query (Action).
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); strings.HasPrefix(target, "AmazonSQS.") {
		s.serveSQS(w, r, strings.TrimPrefix(target, "AmazonSQS."), body)
		return
	} else if target != "" {
		s.serveJSON(w, target, body)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := form.Get("Action")
	iam := form.Get("Version") == "2010-05-08"
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Service: map[bool]string{true: "iam", false: "ec2"}[iam], Action: action, Form: form})
	if e, ok := s.injected(action); ok {
		if iam {
			writeIAMError(w, e)
		} else {
			writeEC2Error(w, e)
		}
		return
	}
	var resp []node
	var aerr *apiError
	if iam {
		resp, aerr = s.iamAction(action, form)
		if aerr != nil {
			writeIAMError(w, *aerr)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write(document(action+"Response", "https://iam.amazonaws.com/doc/2010-05-08/",
			append([]node{el(action+"Result", resp...)}, el("ResponseMetadata", txt("RequestId", "req-fake")))...))
		return
	}
	if action == "CreateFleet" {
		// Fleet answers are replayed per client token, so CreateFleet
		// renders its own document.
		out, aerr := s.createFleet(form)
		if aerr != nil {
			writeEC2Error(w, *aerr)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write(out)
		return
	}
	resp, aerr = s.ec2Action(action, form)
	if aerr != nil {
		writeEC2Error(w, *aerr)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(document(action+"Response", ec2Namespace, append([]node{txt("requestId", "req-fake")}, resp...)...))
}

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// injected pops a throttle or an injected failure of action.
func (s *Server) injected(action string) (apiError, bool) {
	if n := s.throttles[action]; n > 0 {
		s.throttles[action] = n - 1
		s.faults[FaultThrottle]++
		return apiError{code: "RequestLimitExceeded", message: "Request limit exceeded.", status: http.StatusServiceUnavailable}, true
	}
	if f := s.failures[action]; len(f) > 0 {
		s.failures[action] = f[1:]
		s.faults[map[bool]string{true: FaultServerError, false: FaultAPIError}[f[0].status >= 500]]++
		return f[0], true
	}
	return apiError{}, false
}

func writeEC2Error(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>`)
	b.WriteString(escape(e.code))
	b.WriteString(`</Code><Message>`)
	b.WriteString(escape(e.message))
	b.WriteString(`</Message></Error></Errors><RequestID>req-fake</RequestID></Response>`)
	_, _ = io.WriteString(w, b.String())
}

func writeIAMError(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>req-fake</RequestId></ErrorResponse>`, escape(e.code), escape(e.message))
}

func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ---- JSON 1.1: SSM and Pricing ---------------------------------------------

func (s *Server) serveJSON(w http.ResponseWriter, target string, body []byte) {
	action := target[strings.LastIndex(target, ".")+1:]
	s.mu.Lock()
	defer s.mu.Unlock()
	service := map[bool]string{true: "ssm", false: "pricing"}[strings.HasPrefix(target, "AmazonSSM.")]
	s.requests = append(s.requests, Request{Service: service, Action: action, Form: url.Values{"body": {string(body)}}})
	writeErr := func(e apiError) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", e.code)
		w.WriteHeader(e.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.message})
	}
	if e, ok := s.injected(action); ok {
		if e.code == "RequestLimitExceeded" {
			e.code = "ThrottlingException"
		}
		writeErr(e)
		return
	}
	var in map[string]any
	_ = json.Unmarshal(body, &in)
	var out any
	switch target {
	case "AmazonSSM.GetParameter":
		name, _ := in["Name"].(string)
		v, ok := s.ssm[name]
		if !ok {
			writeErr(apiError{code: "ParameterNotFound", message: "parameter " + name + " not found", status: http.StatusBadRequest})
			return
		}
		out = map[string]any{"Parameter": map[string]any{"Name": name, "Type": "String", "Value": v, "Version": 1, "DataType": "aws:ec2:image"}}
	case "AWSPriceListService.GetProducts":
		out = s.getProducts(in)
	default:
		writeErr(apiError{code: "UnknownOperationException", message: target, status: http.StatusBadRequest})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

// getProducts answers with one Pricing API product document per on-demand
// price of the inventory's region, honouring the regionCode filter.
func (s *Server) getProducts(in map[string]any) map[string]any {
	region := ""
	if fs, ok := in["Filters"].([]any); ok {
		for _, f := range fs {
			if m, ok := f.(map[string]any); ok && m["Field"] == "regionCode" {
				region, _ = m["Value"].(string)
			}
		}
	}
	var docs []string
	if region == "" || region == s.region {
		names := make([]string, 0, len(s.odPrices))
		for n := range s.odPrices {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			doc, _ := json.Marshal(map[string]any{
				"product": map[string]any{"productFamily": "Compute Instance", "attributes": map[string]string{"instanceType": n, "regionCode": s.region, "operatingSystem": "Linux"}},
				"terms": map[string]any{"OnDemand": map[string]any{"SKU.TERM": map[string]any{"priceDimensions": map[string]any{
					"SKU.TERM.DIM": map[string]any{"unit": "Hrs", "pricePerUnit": map[string]string{"USD": strconv.FormatFloat(s.odPrices[n], 'f', -1, 64)}},
				}}}},
			})
			docs = append(docs, string(doc))
		}
	}
	start := 0
	if t, ok := in["NextToken"].(string); ok {
		start, _ = strconv.Atoi(t)
	}
	size := s.pageSize
	if mr, ok := in["MaxResults"].(float64); ok && (size == 0 || int(mr) < size) {
		size = int(mr)
	}
	page, next := paginate(len(docs), start, size)
	out := map[string]any{"FormatVersion": "aws_v1", "PriceList": docs[page[0]:page[1]]}
	if next != "" {
		out["NextToken"] = next
	}
	return out
}

// paginate returns the [from, to) bounds of a page and the next token.
func paginate(n, start, size int) ([2]int, string) {
	if start > n {
		start = n
	}
	end := n
	if size > 0 && start+size < n {
		end = start + size
	}
	next := ""
	if end < n {
		next = strconv.Itoa(end)
	}
	return [2]int{start, end}, next
}
