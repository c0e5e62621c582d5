package aws_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// The AWS chaos test drives the provider's Create/Get/List/Delete (the calls
// Karpenter core's lifecycle, termination and garbage collection make) over
// the aws Backend and the production SDK clients against the in-process EC2
// endpoint, under a seeded schedule of faults: throttling bursts, 4xx and 5xx
// errors, answers lost after the call took effect (500, connection reset,
// delay past the client timeout), capacity refusals on chosen offerings
// (partial fleet answers), capacity limits, small pages, and controller
// crashes between a launch and the NodeClaim status update, after which a new
// backend and provider re-create the same NodeClaims. The orphan
// orphan collector runs throughout. At the end every NodeClaim launched or got
// an insufficient capacity error, and no instance runs that no live
// NodeClaim uses.
const (
	chaosRounds = 22
	// chaosStep is the fake time between rounds: orphans pass the grace
	// period after a few rounds, refusals expire after 9.
	chaosStep = 20 * time.Second
	// chaosHTTPTimeout bounds one HTTP attempt; chaosSlow is how late a
	// slow answer comes, past the timeout.
	chaosHTTPTimeout = time.Second
	chaosSlow        = 1300 * time.Millisecond
	chaosDrainRounds = 12
)

// chaosSeed fixes the fault schedule; CHAOS_SEED=n explores another one.
var chaosSeed = func() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		return v
	}
	return 20260815
}()

// chaosInventory is the unit inventory with capacity limits, so that
// launches run out of room and get insufficient capacity errors.
func chaosInventory() fakeaws.Inventory {
	inv := inventory()
	inv.Capacity = map[fakeaws.Offering]int{}
	for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		inv.Capacity[od("g4dn.xlarge", z)] = 5
		inv.Capacity[od("g6.xlarge", z)] = 3
		inv.Capacity[od("g7e.xlarge", z)] = 2
		inv.Capacity[fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: z, CapacityType: fakeaws.Spot}] = 3
		inv.Capacity[fakeaws.Offering{InstanceType: "g6.xlarge", Zone: z, CapacityType: fakeaws.Spot}] = 2
	}
	inv.Capacity[od("g5.xlarge", "us-east-1a")] = 2
	inv.Capacity[od("g5.xlarge", "us-east-1b")] = 1
	inv.Capacity[od("p5.48xlarge", "us-east-1a")] = 0
	inv.Capacity[od("p5.48xlarge", "us-east-1b")] = 0
	inv.Capacity[od("p5.48xlarge", "us-east-1c")] = 0
	return inv
}

// killableClient is the HTTP client of one controller process: once the
// process is killed, its calls fail without reaching the endpoint.
type killableClient struct {
	inner awssdk.HTTPClient
	dead  *atomic.Bool
}

func (k killableClient) Do(r *http.Request) (*http.Response, error) {
	if k.dead.Load() {
		return nil, errors.New("controller process killed")
	}
	return k.inner.Do(r)
}

// chaosStack is one controller process: SDK clients, backend, provider and
// orphan collector.
type chaosStack struct {
	n       int
	backend *awsbackend.Backend
	cp      *gpucp.CloudProvider
	gc      *orphans.Controller
	dead    *atomic.Bool
}

func newChaosStack(t *testing.T, n int, srv *fakeaws.Server, clk *clocktesting.FakeClock, kube client.Client) *chaosStack {
	t.Helper()
	dead := &atomic.Bool{}
	cfg, err := awsbackend.LoadConfig(context.Background(), awsbackend.ConfigOptions{
		Region:      "us-east-1",
		Retry:       awsbackend.RetryOptions{MaxAttempts: 4, MaxBackoff: 40 * time.Millisecond},
		HTTPTimeout: chaosHTTPTimeout,
		Extra: []func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
			config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPClient = killableClient{inner: cfg.HTTPClient, dead: dead}
	clients := awsbackend.NewClients(cfg, srv.URL)
	backend, err := awsbackend.NewBackend(context.Background(), awsbackend.Options{
		Region: "us-east-1", ClusterName: cluster, ClusterEndpoint: "https://api.unit.example", ClusterCABundle: "Q0E=",
		ClusterCIDR: "10.100.0.0/16", KubernetesVersion: k8sVersion, Clock: clk,
		EC2: clients.EC2, SSM: clients.SSM, Pricing: clients.Pricing, IAM: clients.IAM,
		CallTimeout: 10 * time.Second, LaunchTimeout: 30 * time.Second, BatchIdle: 30 * time.Millisecond, BatchMax: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := gpucp.New(gpucp.Options{KubeClient: kube, Backend: backend, Clock: clk, ClusterName: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return &chaosStack{n: n, backend: backend, cp: cp, dead: dead,
		gc: orphans.NewController(backend.OrphanOptions(orphans.Options{KubeClient: kube, GracePeriod: gpucp.DefaultOrphanGracePeriod}))}
}

// chaosClaim is one NodeClaim's life as core would drive it.
type chaosClaim struct {
	name, shape string
	nc          *karpv1.NodeClaim // as stored, without status
	state       string            // pending, launched, terminating, gone, ice
	providerID  string
	attempts    int
	errs        []string
	deleteAt    int      // round to delete it in, once launched (-1: never)
	lost        []string // instances whose Create result a crash lost
	relaunch    bool     // re-created after a crash
}

// shapes are NodeClaim requirement sets: the cheapest-first mix (reserved,
// spot, on-demand), on-demand only, spot only, and a scarce type.
var chaosShapes = map[string][]karpv1.NodeSelectorRequirementWithMinValues{
	"any": nil,
	"od": {req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand),
		req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g4dn.xlarge", "g6.xlarge", "g7e.xlarge")},
	"spot":   {req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeSpot)},
	"scarce": {req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g5.xlarge")},
}

// chaosOfferings are the offerings capacity refusals are injected on.
var chaosOfferings = func() []fakeaws.Offering {
	var out []fakeaws.Offering
	for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		out = append(out, od("g4dn.xlarge", z), od("g6.xlarge", z), od("g7e.xlarge", z),
			fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: z, CapacityType: fakeaws.Spot})
	}
	return append(out, fakeaws.Offering{InstanceType: "g6.xlarge", Zone: "us-east-1b", CapacityType: fakeaws.Reserved},
		fakeaws.Offering{InstanceType: "g6.xlarge", Zone: "us-east-1a", CapacityType: fakeaws.Spot})
}()

type chaosRun struct {
	t     *testing.T
	rng   *rand.Rand
	srv   *fakeaws.Server
	clk   *clocktesting.FakeClock
	kube  client.Client
	stack *chaosStack
	start time.Time

	// claims are changed by at most one operation per round and read
	// between rounds; stats are counted concurrently, under mu.
	claims []*chaosClaim
	mu     sync.Mutex
	stats  map[string]int
	// refused: offering -> round its injected capacity error ends
	refused map[fakeaws.Offering]int
}

func (r *chaosRun) count(key string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats[key] += n
}

func (r *chaosRun) logf(format string, args ...any) {
	r.t.Logf("[%5.1fs] %s", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	start := time.Now()
	clk := clocktesting.NewFakeClock(epoch)
	srv := fakeaws.New(chaosInventory())
	t.Cleanup(srv.Close)
	srv.SetClock(clk.Now)
	kube := fake.NewClientBuilder().WithStatusSubresource(&v1alpha1.GPUNodeClass{}).Build()
	r := &chaosRun{t: t, rng: rand.New(rand.NewPCG(chaosSeed, chaosSeed^0x5eed)), srv: srv, clk: clk, kube: kube, start: start,
		stats: map[string]int{}, refused: map[fakeaws.Offering]int{}}
	r.stack = newChaosStack(t, 1, srv, clk, kube)
	e := &env{t: t, ctx: context.Background(), clock: clk, srv: srv, backend: r.stack.backend, kube: kube, cp: r.stack.cp}
	e.resolved(nodeClass())

	restarts := 0
	for round := range chaosRounds {
		r.armFaults(round)
		crash := round > 0 && r.rng.Float64() < 0.3
		ops := r.plan(round, crash)
		r.runOps(ops)
		if crash {
			// The process dies at the end of the round: its clients stop,
			// a new process (backend, provider, collector) takes over.
			r.stack.dead.Store(true)
			restarts++
			r.stack = newChaosStack(t, restarts+1, srv, clk, kube)
			r.logf("round %d: controller restarted (process %d)", round, r.stack.n)
		}
		r.srv.ClearFaults()
		r.clk.Step(chaosStep)
	}
	// Drain: no more injected faults; pending launches and deletions
	// finish, as core's controllers keep retrying them.
	r.srv.ClearFaults()
	r.srv.SetPageSize(0)
	for o := range r.refused {
		r.srv.InsufficientCapacity(o, "-")
	}
	for round := chaosRounds; round < chaosRounds+chaosDrainRounds; round++ {
		ops := r.plan(round, false)
		if len(ops) == 0 {
			break
		}
		r.runOps(ops)
		r.clk.Step(chaosStep)
	}
	// Past the grace period, the collector runs twice (the first pass may
	// terminate, the second sees the result).
	r.clk.Step(gpucp.DefaultOrphanGracePeriod + time.Second)
	for range 2 {
		if _, err := r.stack.gc.Reconcile(context.Background()); err != nil {
			t.Errorf("final garbage collection: %v", err)
		}
	}
	r.report(restarts, time.Since(start))
}

// armFaults arms this round's faults from the seeded generator.
func (r *chaosRun) armFaults(round int) {
	rng, srv := r.rng, r.srv
	var armed []string
	arm := func(format string, args ...any) { armed = append(armed, fmt.Sprintf(format, args...)) }
	if rng.Float64() < 0.6 {
		a := []string{"CreateFleet", "DescribeInstances", "TerminateInstances", "CreateTags", "DescribeCapacityReservations"}[rng.IntN(5)]
		n := 1 + rng.IntN(8) // past MaxAttempts (4) the call fails
		srv.Throttle(a, n)
		arm("throttle %s x%d", a, n)
	}
	if rng.Float64() < 0.4 {
		a := []string{"CreateFleet", "DescribeInstances", "TerminateInstances"}[rng.IntN(3)]
		code, status := lo.Ternary(rng.IntN(2) == 0, "InternalError", "Unavailable"), lo.Ternary(rng.IntN(2) == 0, 500, 503)
		n := 1 + rng.IntN(3)
		srv.FailStatus(a, code, "injected", status, n)
		arm("%d %s on %s x%d", status, code, a, n)
	}
	if rng.Float64() < 0.35 {
		a := []string{"CreateFleet", "TerminateInstances"}[rng.IntN(2)]
		code := map[string]string{"CreateFleet": "UnauthorizedOperation", "TerminateInstances": "OperationNotPermitted"}[a]
		srv.Fail(a, code, "injected", 1)
		arm("400 %s on %s", code, a)
	}
	if rng.Float64() < 0.5 {
		a := []string{"CreateFleet", "CreateFleet", "TerminateInstances", "CreateTags"}[rng.IntN(4)]
		n := 1 + rng.IntN(5) // past MaxAttempts the launch fails, having launched
		srv.LoseResponses(a, n)
		arm("lost answers of %s x%d", a, n)
	}
	if rng.Float64() < 0.3 {
		a := []string{"CreateFleet", "DescribeInstances"}[rng.IntN(2)]
		srv.ResetConnections(a, 1)
		arm("connection reset on %s", a)
	}
	if rng.Float64() < 0.25 {
		a := []string{"CreateFleet", "DescribeInstances"}[rng.IntN(2)]
		srv.Delay(a, chaosSlow, 1)
		arm("slow answer of %s", a)
	}
	for o, until := range r.refused {
		if until <= round {
			srv.InsufficientCapacity(o, "-")
			delete(r.refused, o)
		}
	}
	for range rng.IntN(3) {
		o := chaosOfferings[rng.IntN(len(chaosOfferings))]
		code := []string{"InsufficientInstanceCapacity", "InsufficientInstanceCapacity", "InsufficientFreeAddressesInSubnet", "InternalError"}[rng.IntN(4)]
		if o.CapacityType == fakeaws.Reserved {
			code = "ReservationCapacityExceeded"
		} else if o.CapacityType == fakeaws.Spot && code != "InternalError" {
			code = "MaxSpotInstanceCountExceeded"
		}
		srv.InsufficientCapacity(o, code)
		r.refused[o] = round + 1 + rng.IntN(3)
		arm("%s on %s/%s/%s", code, o.InstanceType, o.Zone, o.CapacityType)
	}
	page := []int{0, 0, 1, 2, 3}[rng.IntN(5)]
	srv.SetPageSize(page)
	if page > 0 {
		arm("page size %d", page)
	}
	r.logf("round %d faults: %s", round, strings.Join(armed, ", "))
}

// plan returns the round's operations: new NodeClaims, retried launches,
// deletions, garbage collection. Every random choice is made here, in
// order, so the schedule depends on the seed only.
func (r *chaosRun) plan(round int, crash bool) []func() {
	var ops []func()
	st := r.stack
	for _, c := range r.claims {
		switch {
		case c.state == "pending":
			// Which claims are pending depends on earlier outcomes: decide
			// by hash, not from the generator, so its sequence stays fixed.
			ops = append(ops, r.createOp(st, c, crash && chaosCoin(round, c.name)))
		case (c.state == "launched" && c.deleteAt >= 0 && c.deleteAt <= round) || c.state == "terminating":
			ops = append(ops, r.deleteOp(st, c))
		}
	}
	if round < chaosRounds {
		for i := range 4 + r.rng.IntN(5) {
			shape := []string{"any", "any", "od", "od", "spot", "scarce"}[r.rng.IntN(6)]
			name := fmt.Sprintf("chaos-%02d-%d-%s", round, i, shape)
			nc := claim(name, 1, chaosShapes[shape]...)
			nc.UID = types.UID(fmt.Sprintf("%08x-chaos-%s", r.rng.Uint32(), name))
			nc.CreationTimestamp = metav1.NewTime(r.clk.Now())
			if err := r.kube.Create(context.Background(), nc.DeepCopy()); err != nil {
				r.t.Fatal(err)
			}
			c := &chaosClaim{name: name, shape: shape, nc: nc, state: "pending", deleteAt: lo.Ternary(r.rng.Float64() < 0.6, round+2+r.rng.IntN(6), -1)}
			r.claims = append(r.claims, c)
			ops = append(ops, r.createOp(st, c, crash && r.rng.Float64() < 0.5))
		}
		if round%2 == 1 {
			ops = append(ops, func() {
				if _, err := st.gc.Reconcile(context.Background()); err != nil {
					r.count("gc errors", 1)
				}
			})
		}
	}
	return ops
}

// chaosCoin is a fair coin per round and NodeClaim, fixed by the seed.
func chaosCoin(round int, name string) bool {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%s", chaosSeed, round, name)
	return h.Sum64()%2 == 0
}

// createOp is core's launch of a NodeClaim: Create, then the status update.
// crash loses the result (the process dies before the update).
func (r *chaosRun) createOp(st *chaosStack, c *chaosClaim, crash bool) func() {
	return func() {
		c.attempts++
		r.count("create attempts", 1)
		if c.relaunch {
			r.count("re-creates after a crash", 1)
		}
		got, err := st.cp.Create(context.Background(), c.nc.DeepCopy())
		switch {
		case err == nil:
			r.count("creates succeeded", 1)
			if c.relaunch && len(c.lost) > 0 {
				if lo.Contains(c.lost, got.Status.ProviderID) {
					r.count("re-creates returning the lost instance", 1)
				} else {
					r.count("re-creates launching anew", 1)
					lost := lo.Filter(r.srv.Instances(), func(i fakeaws.Instance, _ int) bool {
						return lo.ContainsBy(c.lost, func(pid string) bool { return strings.HasSuffix(pid, "/"+i.ID) })
					})
					r.logf("%s: re-created after a crash on %s, the lost result was %+v", c.name, got.Status.ProviderID, lost)
				}
			}
			if crash {
				c.lost = append(c.lost, got.Status.ProviderID)
				c.relaunch = true
				r.count("results lost in a crash", 1)
				return
			}
			stored := &karpv1.NodeClaim{}
			if err := r.kube.Get(context.Background(), client.ObjectKey{Name: c.name}, stored); err != nil {
				r.t.Errorf("%s: %v", c.name, err)
				return
			}
			stored.Status.ProviderID = got.Status.ProviderID
			stored.Labels = lo.Assign(stored.Labels, got.Labels)
			if err := r.kube.Update(context.Background(), stored); err != nil {
				r.t.Errorf("%s: %v", c.name, err)
				return
			}
			c.providerID, c.state = got.Status.ProviderID, "launched"
		case karpcp.IsInsufficientCapacityError(err):
			// Core deletes a NodeClaim that cannot launch.
			r.count("insufficient capacity", 1)
			c.errs = append(c.errs, err.Error())
			if err := r.kube.Delete(context.Background(), c.nc.DeepCopy()); err != nil {
				r.t.Errorf("%s: %v", c.name, err)
			}
			c.state = "ice"
		default:
			// Any other error: core retries the same NodeClaim.
			r.count("create errors (retried)", 1)
			c.errs = append(c.errs, err.Error())
		}
	}
}

// deleteOp is core's termination: Delete until the instance is gone, then
// the NodeClaim goes.
func (r *chaosRun) deleteOp(st *chaosStack, c *chaosClaim) func() {
	return func() {
		stored := c.nc.DeepCopy()
		stored.Status.ProviderID = c.providerID
		err := st.cp.Delete(context.Background(), stored)
		switch {
		case karpcp.IsNodeClaimNotFoundError(err):
			if err := r.kube.Delete(context.Background(), c.nc.DeepCopy()); err != nil {
				r.t.Errorf("%s: %v", c.name, err)
			}
			c.state = "gone"
			r.count("deletes completed", 1)
		case err == nil:
			c.state = "terminating"
		default:
			r.count("delete errors (retried)", 1)
		}
	}
}

// runOps runs a round's operations concurrently and waits for all.
func (r *chaosRun) runOps(ops []func()) {
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(op)
	}
	wg.Wait()
}

// report checks and prints the outcome.
func (r *chaosRun) report(restarts int, wall time.Duration) {
	t := r.t
	insts := r.srv.Instances()
	live := lo.Filter(insts, func(i fakeaws.Instance, _ int) bool { return i.State == "pending" || i.State == "running" })
	used := map[string]*chaosClaim{}
	launched, ice, unresolved := 0, 0, 0
	for _, c := range r.claims {
		switch c.state {
		case "launched":
			launched++
			used[c.providerID] = c
		case "gone":
			launched++
		case "ice":
			ice++
		default:
			unresolved++
			t.Errorf("NodeClaim %s (%s) neither launched nor refused for capacity: state %s after %d attempts, errors %v", c.name, c.shape, c.state, c.attempts, c.errs)
		}
	}
	liveNames := lo.SliceToMap(lo.Filter(r.claims, func(c *chaosClaim, _ int) bool { return c.state == "launched" }),
		func(c *chaosClaim) (string, bool) { return c.name, true })
	leaked, duplicates := 0, 0
	for _, i := range live {
		pid := fmt.Sprintf("aws:///%s/%s", i.Zone, i.ID)
		if _, ok := used[pid]; ok {
			if c := used[pid]; i.Tags[gpucp.TagNodeClaim] != c.name {
				t.Errorf("instance %s of NodeClaim %s is tagged %q", i.ID, c.name, i.Tags[gpucp.TagNodeClaim])
			}
			continue
		}
		leaked++
		name := i.Tags[gpucp.TagNodeClaim]
		if liveNames[name] {
			duplicates++
		}
		t.Errorf("instance %s (%s/%s, tagged %q, launched %s) runs without a live NodeClaim using it", i.ID, i.InstanceType, i.Zone, name, i.LaunchTime.Format(time.TimeOnly))
	}
	for pid, c := range used {
		if !lo.ContainsBy(live, func(i fakeaws.Instance) bool { return strings.HasSuffix(pid, "/"+i.ID) }) {
			t.Errorf("NodeClaim %s refers to %s, which is not running", c.name, pid)
		}
	}
	// Instances no NodeClaim ever used (a lost answer or a crash re-launched
	// the NodeClaim): all must be terminated, by the collector.
	everUsed := map[string]bool{}
	for _, c := range r.claims {
		everUsed[c.providerID] = true
	}
	extra := 0
	for _, i := range insts {
		if !everUsed[fmt.Sprintf("aws:///%s/%s", i.Zone, i.ID)] {
			extra++
			t.Logf("unused instance %s: %s/%s reservation %q, NodeClaim tag %q, launched %s, %s", i.ID, i.InstanceType, i.Zone, i.ReservationID,
				i.Tags[gpucp.TagNodeClaim], i.LaunchTime.Format(time.TimeOnly), i.State)
		}
	}
	faults := r.srv.Faults()
	kinds := lo.Keys(faults)
	sort.Strings(kinds)
	total := 0
	var parts []string
	for _, k := range kinds {
		total += faults[k]
		parts = append(parts, fmt.Sprintf("%s=%d", k, faults[k]))
	}
	parts = append(parts, fmt.Sprintf("restart=%d", restarts))
	total += restarts
	keys := lo.Keys(r.stats)
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("  %-40s %d", k, r.stats[k])
	}
	fleets := len(r.srv.Requests("CreateFleet"))
	t.Logf("NodeClaims %d: launched %d (%d still running), insufficient capacity %d, unresolved %d", len(r.claims), launched, len(used), ice, unresolved)
	t.Logf("EC2: %d CreateFleet requests, %d instances launched, %d that no NodeClaim used (re-launched after a lost answer; all collected), %d running", fleets, len(insts), extra, len(live))
	t.Logf("chaos-aws seed=%d: %d faults (%s); launches attempted %d, succeeded %d; leaked %d, duplicates %d, unresolved %d; wall %.1fs",
		chaosSeed, total, strings.Join(parts, " "), r.stats["create attempts"], r.stats["creates succeeded"], leaked, duplicates, unresolved, wall.Seconds())
	for _, k := range []string{fakeaws.FaultThrottle, fakeaws.FaultServerError, fakeaws.FaultLostResponse, fakeaws.FaultFleetError, fakeaws.FaultPartialFleet} {
		if faults[k] == 0 {
			t.Errorf("no %s fault was served: the schedule does not exercise it", k)
		}
	}
	if restarts == 0 || r.stats["results lost in a crash"] == 0 {
		t.Errorf("no crash lost a launch result (%d restarts)", restarts)
	}
	if r.stats["insufficient capacity"] == 0 || launched == 0 {
		t.Errorf("%d launched, %d insufficient capacity: the run exercised too little", launched, ice)
	}
}
