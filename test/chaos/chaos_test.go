package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/status"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/chaos"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

const (
	seed = 20260801
	// launchBudget is one launch latency end to end, with no fault: batch
	// window (idle 1s, max 2s), packing, launch (1s pending), registration
	// (1s), initialization, kube-scheduler binding, pod start, plus slack for
	// a 2-core machine shared with other jobs.
	launchBudget = 25 * time.Second
	// gcGrace is the fake fleet's orphan grace period in this run.
	gcGrace = 10 * time.Second
	// Canaries: neither may appear in any log line or event.
	canaryUserData  = "#!/bin/bash\necho chaos-userdata-canary-5f1c > /etc/canary"
	canaryAccessKey = "AKIACHAOSCANARY12345"
	canarySecret    = "chaos/secret+canary/Zq8v7Yw2PqLk0r4sT1uV6xW9yZ"
)

// slot is one workload replica: the test recreates its pod when it is
// evicted or deleted (as its owning controller would).
type slot struct {
	idx, gpus int
	wave      int
	gen       int
	name      string
	created   time.Time // current incarnation
	running   time.Time // zero while pending
	history   []incarnation
}

type incarnation struct {
	name             string
	created, running time.Time
}

func (s *slot) podName() string { return fmt.Sprintf("gpu-%02d-%d", s.idx, s.gen) }

func gpuPod(s *slot) *corev1.Pod {
	gpus := resource.MustParse(fmt.Sprint(s.gpus))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.podName(), Namespace: "default", Labels: map[string]string{"app": "chaos", "slot": fmt.Sprint(s.idx)}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  lo.ToPtr(false),
			TerminationGracePeriodSeconds: lo.ToPtr(int64(0)),
			Tolerations:                   []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{Name: "train", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("4Gi"), v1alpha1.ResourceNVIDIAGPU: gpus},
				Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: gpus},
			}}},
		},
	}
}

type run struct {
	t      *testing.T
	ctx    context.Context
	cp     *chaos.ControlPlane
	fleet  *fake.Fleet
	clk    *chaos.SkewClock
	logs   *chaos.LogBuffer
	ci     *chaos.ConflictInjector
	ctrl   *chaos.Controller
	gcs    []*orphans.Controller
	slots  []*slot
	start  time.Time
	faults map[string]int // injected by the test itself (restarts, conflicts)
}

func (r *run) logf(format string, args ...any) {
	r.t.Logf("[%5.1fs] %s", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) startController() {
	r.t.Helper()
	c, err := chaos.StartController(r.ctx, chaos.ControllerOptions{
		Config: r.cp.Config, Fleet: r.fleet, Clock: r.clk, KubeletClock: clock.RealClock{}, RegistrationDelay: time.Second, Conflicts: r.ci, Logger: r.logs.Logger(),
		Args:          []string{"--batch-idle-duration=1s", "--batch-max-duration=2s"},
		GCGracePeriod: gcGrace, GCInterval: 3 * time.Second,
	})
	if err != nil {
		r.t.Fatalf("starting controller: %v", err)
	}
	r.ctrl = c
	r.gcs = append(r.gcs, c.GC)
}

// sync recreates missing pods of released slots and records when each
// incarnation is first seen Running.
func (r *run) sync(released int) {
	var pods corev1.PodList
	if err := r.cp.Kube.List(r.ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"app": "chaos"}); err != nil {
		r.logf("listing pods: %v", err)
		return
	}
	var nodes corev1.NodeList
	if err := r.cp.Kube.List(r.ctx, &nodes); err != nil {
		r.logf("listing nodes: %v", err)
		return
	}
	nodeNames := lo.SliceToMap(nodes.Items, func(n corev1.Node) (string, bool) { return n.Name, true })
	for i := range pods.Items {
		// kube-controller-manager's pod garbage collector (not run here)
		// deletes pods bound to nodes that no longer exist, as after a
		// spot interruption whose instance was already gone when Karpenter
		// terminated the node (no drain).
		if p := &pods.Items[i]; p.Spec.NodeName != "" && !nodeNames[p.Spec.NodeName] && p.DeletionTimestamp.IsZero() {
			r.logf("podgc: deleting %s, bound to deleted node %s", p.Name, p.Spec.NodeName)
			_ = client.IgnoreNotFound(r.cp.Kube.Delete(r.ctx, p, client.GracePeriodSeconds(0)))
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
	}
	byName := lo.SliceToMap(pods.Items, func(p corev1.Pod) (string, corev1.Pod) { return p.Name, p })
	now := time.Now()
	for _, s := range r.slots[:released] {
		p, ok := byName[s.name]
		if s.name != "" && ok && p.DeletionTimestamp.IsZero() {
			if s.running.IsZero() && p.Status.Phase == corev1.PodRunning {
				s.running = now
			}
			continue
		}
		if s.name != "" && ok {
			continue // terminating: recreate once it is gone
		}
		if s.name != "" {
			s.history = append(s.history, incarnation{s.name, s.created, s.running})
			s.gen++
		}
		s.name, s.created, s.running = s.podName(), now, time.Time{}
		if err := r.cp.Kube.Create(r.ctx, gpuPod(s)); err != nil {
			r.logf("creating pod %s: %v", s.name, err)
			s.name = ""
		}
	}
}

func (r *run) allRunning() bool {
	return lo.EveryBy(r.slots, func(s *slot) bool { return s.name != "" && !s.running.IsZero() })
}

func TestChaos(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", canaryAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", canarySecret)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	cp := chaos.StartControlPlane(t)
	cp.StartScheduler(t)

	clk := &chaos.SkewClock{}
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	fleet := fake.NewFleet(fake.Options{
		Seed: seed, LaunchLatency: time.Second, // real time: only the controller's clock is skewed
		CapacityTypes: []string{karpv1.CapacityTypeSpot, karpv1.CapacityTypeOnDemand},
		Prices:        catalog.SpotFactor(catalog.NewOnDemandPrices(entries, "us-east-1"), 0.4),
	})
	r := &run{t: t, ctx: ctx, cp: cp, fleet: fleet, clk: clk, logs: &chaos.LogBuffer{}, ci: &chaos.ConflictInjector{Every: 5}, faults: map[string]int{}}
	t.Cleanup(func() {
		if r.ctrl != nil {
			_ = r.ctrl.Stop()
		}
		if t.Failed() {
			dump(t, cp.Kube, r.logs)
		}
	})

	// Workload: 20 replicas of 1, 2 or 4 L4 GPUs (seeded), in three waves.
	rng := rand.New(rand.NewSource(seed))
	waves := []int{8, 6, 6}
	for w, n := range waves {
		for range n {
			r.slots = append(r.slots, &slot{idx: len(r.slots), gpus: []int{1, 2, 4}[rng.Intn(3)], wave: w})
		}
	}
	idle := karpv1.MustParseNillableDuration("Never")
	nodeClass := controlplane.DiscoveryGPUNodeClass("gpu", "chaos")
	nodeClass.Spec.UserData = lo.ToPtr(canaryUserData)
	nodeClass.Spec.Tags = map[string]string{"team": "ml"}
	nodeClass.Spec.GPU.IdleAfter = &idle
	nodeClass.Spec.GPU.StartupTimeout = &metav1.Duration{Duration: 8 * time.Second}
	nodePool := controlplane.L4NodePool("gpu", nodeClass,
		karpv1.NodeSelectorRequirementWithMinValues{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeSpot, karpv1.CapacityTypeOnDemand}})
	// Consolidation would move pods on its own schedule and blur what the
	// faults did.
	nodePool.Spec.Disruption = karpv1.Disruption{ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmpty, ConsolidateAfter: karpv1.MustParseNillableDuration("Never"),
		Budgets: []karpv1.Budget{{Nodes: "100%"}}}
	for _, o := range []client.Object{nodeClass, nodePool} {
		if err := cp.Kube.Create(ctx, o); err != nil {
			t.Fatalf("creating %T: %v", o, err)
		}
	}

	r.start = time.Now()
	r.startController()
	r.logf("control plane, kube-scheduler and controller up")

	// The fault schedule (seconds from start). Fault kinds the fleet counts
	// itself are armed here and consumed by the launches that follow.
	throttle := errors.New("RequestLimitExceeded: Request limit exceeded (injected)")
	timeout := errors.New("dial tcp: i/o timeout (injected)")
	g6 := func(zone, ct string) fake.Offering {
		return fake.Offering{InstanceType: "g6.xlarge", Zone: zone, CapacityType: ct}
	}
	type step struct {
		at   time.Duration
		what string
		do   func()
	}
	released := 0
	restartArmed, restarted := false, false
	schedule := []step{
		{0, "wave 1 (8 pods); capacity errors on the cheapest offerings; Launch/Get/List/Terminate API errors; slow launches; a lost launch reply; a node that never registers; a device plugin that never reports", func() {
			fleet.RefuseCapacity(g6("us-east-1a", karpv1.CapacityTypeSpot), 3)
			fleet.SetCapacity(g6("us-east-1b", karpv1.CapacityTypeSpot), 1)
			fleet.RefuseCapacity(fake.Offering{InstanceType: "g6.12xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeSpot}, 2)
			fleet.InjectAPIError("Launch", throttle)
			fleet.InjectAPIError("Launch", timeout)
			fleet.InjectAPIError("Get", throttle)
			fleet.InjectAPIError("Get", timeout)
			fleet.InjectAPIError("List", throttle)
			fleet.InjectAPIError("Terminate", throttle)
			fleet.SlowLaunchNext(2, 6*time.Second)
			fleet.LoseLaunchResponseNext(1)
			fleet.NeverRegisterNext(1)
			fleet.HideGPUsNext(1)
			released = waves[0]
		}},
		{12 * time.Second, "wave 2 (6 pods); API server write conflicts on every 5th controller write", func() {
			r.ci.Enable(true)
			released += waves[1]
		}},
		{20 * time.Second, "spot interruption burst (2 instances)", func() {
			ids := fleet.InterruptRandom(2)
			r.logf("interrupted %v", ids)
		}},
		{24 * time.Second, "wave 3 (6 pods); the next launch's reply is delayed 20s and the controller is killed while it is in flight", func() {
			fleet.DelayLaunchResponseNext(1, 20*time.Second)
			released += waves[2]
			restartArmed = true
		}},
		{34 * time.Second, "write conflicts off", func() { r.ci.Enable(false) }},
	}
	restart := func(why string) {
		r.logf("controller restart (%s)", why)
		if err := r.ctrl.Stop(); err != nil {
			buf := make([]byte, 1<<22)
			buf = buf[:goruntime.Stack(buf, true)]
			path := filepath.Join(os.TempDir(), fmt.Sprintf("chaos-stacks-%d.txt", os.Getpid()))
			_ = os.WriteFile(path, buf, 0o600)
			// A killed process does not wait for its workers either; the
			// duplicate and leak checks below catch a worker that lingers.
			r.logf("controller did not stop cleanly: %v (goroutines in %s)", err, path)
		}
		r.faults["controller-restart"]++
		// While the controller is down, someone deletes the NodeClaim whose
		// launch was in flight: its instance exists but no NodeClaim will
		// ever record it. The fleet's orphan collector must reclaim it.
		for _, rec := range fleet.LaunchRecords() {
			if lo.Contains(rec.Faults, fake.FaultDelayedResponse) && rec.NodeClaim != "" {
				nc := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: rec.NodeClaim}}
				if err := cp.Kube.Delete(ctx, nc); client.IgnoreNotFound(err) != nil {
					t.Fatal(err)
				}
				r.faults["nodeclaim-deleted-mid-launch"]++
				r.logf("deleted NodeClaim %s (instance %s launched, not yet recorded)", rec.NodeClaim, rec.InstanceID)
			}
		}
		r.startController()
		restarted = true
	}

	// Phase 1: the schedule, until the workload is placed as far as the
	// faults allow.
	lastChange, lastRunning := time.Now(), -1
	for {
		el := time.Since(r.start)
		for len(schedule) > 0 && el >= schedule[0].at {
			r.logf("fault schedule: %s", schedule[0].what)
			schedule[0].do()
			schedule = schedule[1:]
		}
		if restartArmed && !restarted {
			if fleet.LaunchesInFlight() > 0 {
				time.Sleep(500 * time.Millisecond) // the instance exists; its reply has not arrived
				restart("killed with a launch in flight")
			} else if el > 45*time.Second {
				restart("no launch was in flight by 45s")
			}
		}
		r.sync(released)
		running := lo.CountBy(r.slots, func(s *slot) bool { return !s.running.IsZero() })
		if running != lastRunning {
			lastRunning, lastChange = running, time.Now()
			r.logf("%d/%d pods running", running, len(r.slots))
		}
		if len(schedule) == 0 && restarted && (r.allRunning() || time.Since(lastChange) > 15*time.Second || el > 90*time.Second) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("timed out in the fault schedule")
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Phase 2: Karpenter core gives a node 15 minutes to register
	// (registrationTimeout, not configurable). Jump the controller's clock
	// past it, wake the NodeClaims, and return to real time once core has
	// deleted them (some NodeClaim conditions are stamped with the wall
	// clock, so a skew left in place would time out every new NodeClaim).
	var claims karpv1.NodeClaimList
	if err := cp.Kube.List(ctx, &claims); err != nil {
		t.Fatal(err)
	}
	unregistered := lo.Filter(claims.Items, func(nc karpv1.NodeClaim, _ int) bool {
		return nc.Status.ProviderID != "" && !nc.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue()
	})
	r.logf("advancing the controller clock 16m past core's registration timeout; %d NodeClaims launched but unregistered: %v", len(unregistered),
		lo.Map(unregistered, func(nc karpv1.NodeClaim, _ int) string { return nc.Name }))
	clk.Advance(16 * time.Minute)
	for i := range unregistered {
		nc := &unregistered[i]
		stored := nc.DeepCopy()
		nc.Annotations = lo.Assign(nc.Annotations, map[string]string{"chaos.karpenter-gpu.io/poke": "1"})
		_ = client.IgnoreNotFound(cp.Kube.Patch(ctx, nc, client.MergeFrom(stored)))
	}
	for waitUntil := time.Now().Add(10 * time.Second); time.Now().Before(waitUntil); time.Sleep(200 * time.Millisecond) {
		if lo.EveryBy(unregistered, func(nc karpv1.NodeClaim) bool {
			latest := &karpv1.NodeClaim{}
			err := cp.Kube.Get(ctx, client.ObjectKeyFromObject(&nc), latest)
			return err != nil || !latest.DeletionTimestamp.IsZero()
		}) {
			break
		}
	}
	clk.Reset()
	faultEnd := time.Now()
	r.logf("clock back to real time; fault window closed")

	// Phase 3: everything must run within one launch latency of the end of
	// the fault window.
	for !r.allRunning() && time.Since(faultEnd) < 2*launchBudget && ctx.Err() == nil {
		r.sync(released)
		time.Sleep(500 * time.Millisecond)
	}
	r.sync(released)
	r.logf("%d/%d pods running", lo.CountBy(r.slots, func(s *slot) bool { return !s.running.IsZero() }), len(r.slots))

	// Leaks: past the orphan grace period (the clock jump ages every
	// instance past it), every running instance must belong to a NodeClaim.
	deadline := time.Now().Add(2 * gcGrace)
	var leaked []string
	for {
		leaked = leakedInstances(t, ctx, cp.Kube, fleet)
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if path := os.Getenv("CHAOS_LOG"); path != "" {
		_ = os.WriteFile(path, []byte(r.logs.String()), 0o600)
	}
	report(t, r, faultEnd, leaked)
	checkSecrets(t, ctx, cp.Kube, r.logs)
}

// leakedInstances lists fleet instances that are not terminated and that no
// NodeClaim's provider ID refers to.
func leakedInstances(t *testing.T, ctx context.Context, kube client.Client, fleet *fake.Fleet) []string {
	t.Helper()
	var claims karpv1.NodeClaimList
	if err := kube.List(ctx, &claims); err != nil {
		t.Fatal(err)
	}
	owned := lo.SliceToMap(claims.Items, func(nc karpv1.NodeClaim) (string, bool) { return nc.Status.ProviderID, true })
	var out []string
	for _, rec := range fleet.LaunchRecords() {
		if rec.State == cloudprovider.InstanceStateTerminated {
			continue
		}
		if inst, err := fleet.Get(ctx, rec.InstanceID); err == nil && !owned[fleet.ProviderID(inst)] {
			out = append(out, rec.InstanceID)
		}
	}
	return out
}

func report(t *testing.T, r *run, faultEnd time.Time, leaked []string) {
	counts := lo.Assign(r.fleet.FaultCounts(), r.faults, map[string]int{"apiserver-write-conflict": int(r.ci.Injected())})
	kinds := lo.Keys(counts)
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-34s %s\n", "fault injected", "count")
	total := 0
	for _, k := range kinds {
		fmt.Fprintf(&b, "%-34s %d\n", k, counts[k])
		total += counts[k]
	}
	fmt.Fprintf(&b, "%-34s %d\n", "total", total)

	var late []string
	var waits []time.Duration
	ran := 0
	for _, s := range r.slots {
		for _, inc := range append(s.history, incarnation{s.name, s.created, s.running}) {
			if inc.running.IsZero() {
				if inc.name == s.name { // the current incarnation never ran
					late = append(late, inc.name+" (never ran)")
				}
				continue
			}
			waits = append(waits, inc.running.Sub(inc.created))
			if inc.running.After(lo.Latest(inc.created, faultEnd).Add(launchBudget)) {
				late = append(late, fmt.Sprintf("%s (pending %s)", inc.name, inc.running.Sub(inc.created).Round(time.Second)))
			}
		}
		if !s.running.IsZero() {
			ran++
		}
	}
	recreated := lo.SumBy(r.slots, func(s *slot) int { return s.gen })
	dups := r.fleet.Duplicates()
	collected := lo.Uniq(lo.FlatMap(r.gcs, func(g *orphans.Controller, _ int) []string { return g.Collected() }))
	recs := r.fleet.LaunchRecords()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	fmt.Fprintf(&b, "\n%-34s %d/%d (%d pods recreated after eviction)\n", "pods that eventually ran", ran, len(r.slots), recreated)
	byState := lo.CountValuesBy(recs, func(rec fake.LaunchRecord) cloudprovider.InstanceState { return rec.State })
	fmt.Fprintf(&b, "%-34s %d (%d running, %d terminated)\n", "instances launched", len(recs), byState[cloudprovider.InstanceStateRunning], byState[cloudprovider.InstanceStateTerminated])
	fmt.Fprintf(&b, "%-34s %d\n", "launches answered by client token", r.fleet.TokenReuses())
	fmt.Fprintf(&b, "%-34s %d %v\n", "orphans collected by fleet GC", len(collected), collected)
	fmt.Fprintf(&b, "%-34s %d %v\n", "instances leaked (after GC grace)", len(leaked), leaked)
	fmt.Fprintf(&b, "%-34s %d %v\n", "duplicate launches", len(dups), dups)
	fmt.Fprintf(&b, "%-34s %d %v\n", "pods late (> fault window + "+launchBudget.String()+")", len(late), late)
	if len(waits) > 0 {
		fmt.Fprintf(&b, "%-34s p50 %s, max %s\n", "pod pending time", waits[len(waits)/2].Round(100*time.Millisecond), waits[len(waits)-1].Round(100*time.Millisecond))
	}
	fmt.Fprintf(&b, "%-34s %s\n", "fault window", faultEnd.Sub(r.start).Round(time.Second))
	fmt.Fprintf(&b, "\nlaunches with injected faults:\n")
	for _, rec := range recs {
		if len(rec.Faults) > 0 {
			fmt.Fprintf(&b, "  %s nodeclaim=%s state=%s faults=%v\n", rec.InstanceID, rec.NodeClaim, rec.State, rec.Faults)
		}
	}
	t.Log(b.String())

	if ran != len(r.slots) {
		t.Errorf("%d/%d pods ran", ran, len(r.slots))
	}
	if len(leaked) > 0 {
		t.Errorf("leaked instances: %v", leaked)
	}
	if len(dups) > 0 {
		t.Errorf("duplicate launches: %v", dups)
	}
	if len(late) > 0 {
		t.Errorf("pods pending longer than the fault window plus one launch latency: %v", late)
	}
	if len(collected) == 0 {
		t.Errorf("the instance whose NodeClaim was deleted mid-launch was not collected as an orphan")
	}
	for _, k := range []string{fake.FaultCapacityRefused, fake.FaultAPIError + "Launch", fake.FaultSlowLaunch, fake.FaultLostResponse, fake.FaultDelayedResponse,
		fake.FaultNeverRegister, fake.FaultNoGPUs, fake.FaultSpotInterruption, "controller-restart", "apiserver-write-conflict"} {
		if counts[k] == 0 {
			t.Errorf("fault %q was scheduled but never injected", k)
		}
	}
}

// checkSecrets asserts that no log line or event carries credentials or the
// node class's user data.
func checkSecrets(t *testing.T, ctx context.Context, kube client.Client, logs *chaos.LogBuffer) {
	var texts []string
	var evs corev1.EventList
	if err := kube.List(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		texts = append(texts, e.Reason+" "+e.Message)
	}
	var evs2 eventsv1.EventList
	if err := kube.List(ctx, &evs2); err == nil {
		for _, e := range evs2.Items {
			texts = append(texts, e.Reason+" "+e.Note)
		}
	}
	logText := logs.String()
	texts = append(texts, logText)
	all := strings.Join(texts, "\n")
	for name, re := range map[string]*regexp.Regexp{
		"access key canary":        regexp.MustCompile(regexp.QuoteMeta(canaryAccessKey)),
		"secret key canary":        regexp.MustCompile(regexp.QuoteMeta(canarySecret)),
		"user data canary":         regexp.MustCompile("chaos-userdata-canary"),
		"AWS access key ID":        regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`),
		"aws_secret_access_key":    regexp.MustCompile(`(?i)aws_secret_access_key`),
		"private key":              regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`),
		"bearer token":             regexp.MustCompile(`(?i)bearer [a-z0-9._-]{20,}`),
		"base64 user data (shell)": regexp.MustCompile(`IyEvYmluL2Jhc2g`), // "#!/bin/bash"
	} {
		if m := re.FindString(all); m != "" {
			t.Errorf("%s found in controller logs or events: %q", name, m)
		}
	}
	t.Logf("secrets check: %d log bytes (%d lines) and %d events scanned", len(logText), strings.Count(logText, "\n"), len(evs.Items)+len(evs2.Items))
}

func dump(t *testing.T, kube client.Client, logs *chaos.LogBuffer) {
	ctx := context.Background()
	var claims karpv1.NodeClaimList
	var pods corev1.PodList
	var nodes corev1.NodeList
	_ = kube.List(ctx, &claims)
	_ = kube.List(ctx, &pods, client.InNamespace("default"))
	_ = kube.List(ctx, &nodes)
	for _, c := range claims.Items {
		t.Logf("nodeclaim %s provider=%s deleting=%v conditions=%v", c.Name, c.Status.ProviderID, !c.DeletionTimestamp.IsZero(),
			lo.Map(c.Status.Conditions, func(c status.Condition, _ int) string { return c.Type + "=" + string(c.Status) + "(" + c.Reason + ")" }))
	}
	for _, n := range nodes.Items {
		t.Logf("node %s taints=%v gpus=%v", n.Name, lo.Map(n.Spec.Taints, func(t corev1.Taint, _ int) string { return t.Key }), n.Status.Allocatable.Name(v1alpha1.ResourceNVIDIAGPU, resource.DecimalSI))
	}
	for _, p := range pods.Items {
		t.Logf("pod %s gpus=%s node=%q phase=%s conditions=%v", p.Name, p.Spec.Containers[0].Resources.Requests.Name(v1alpha1.ResourceNVIDIAGPU, resource.DecimalSI), p.Spec.NodeName, p.Status.Phase,
			lo.Map(p.Status.Conditions, func(c corev1.PodCondition, _ int) string {
				return string(c.Type) + "=" + string(c.Status) + "(" + c.Message + ")"
			}))
	}
	lines := strings.Split(logs.String(), "\n")
	errs := lo.Filter(lines, func(l string, _ int) bool { return strings.Contains(l, `"level":"error"`) })
	t.Logf("--- last controller error lines (%d) ---\n%s", len(errs), strings.Join(lo.Subset(errs, -40, 40), "\n"))
}
