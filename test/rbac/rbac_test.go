// Package rbac checks the Helm chart's RBAC against what the controller
// really does: the full controller set runs against a real API server
// (envtest, RBAC authorization on) as the chart's service account, bound by
// the chart's own ClusterRole and Roles. Two runs: the fake backend through a
// provisioning round, pods bound by kube-scheduler and a node termination
// with drain (TestChartRBACCoversControllerRequests); the EKS values with the
// aws backend on the in-process EC2 endpoint through node class resolution,
// a launch, a consolidation replacement and an empty-node consolidation
// (TestChartRBACCoversAWSBackendAndConsolidation, aws_test.go). Every request
// is recorded. A request the API server forbids fails the test (the
// controller would break in a cluster); rules that grant verbs never used are
// listed (candidates for tightening).
package rbac_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samber/lo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/chaos"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/manifests"
)

const (
	release   = "karpenter-gpu"
	namespace = "karpenter"
	saUser    = "system:serviceaccount:" + namespace + ":" + release
)

// render runs `helm template` as tools/helm/lint.sh does (so chart edits are
// seen at once), falling back to the file lint.sh wrote into bin/rendered.
func render(t *testing.T, file string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	root := chaos.RepoRoot()
	var data []byte
	helm := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helm); err == nil {
		cmd := exec.Command(helm, append([]string{"template", release, filepath.Join(root, "charts", release), "--namespace", namespace, "--kube-version", "1.36.1"}, args...)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(root, "bin", ".helm", "cache"), "HELM_CONFIG_HOME="+filepath.Join(root, "bin", ".helm", "config"),
			"HELM_DATA_HOME="+filepath.Join(root, "bin", ".helm", "data"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helm template: %v", err)
		}
		data = out
	} else {
		out, err := os.ReadFile(filepath.Join(root, "bin", "rendered", file))
		if err != nil {
			t.Fatalf("neither bin/helm nor bin/rendered/%s: run `make chart` (tools/helm/lint.sh)", file)
		}
		data = out
	}
	objs, err := manifests.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// request is one API request as RBAC sees it.
type request struct {
	Verb, Group, Resource, Namespace, Name string
}

func (r request) String() string {
	ns := lo.Ternary(r.Namespace == "", "", " in "+r.Namespace)
	return fmt.Sprintf("%s %s%s", r.Verb, lo.Ternary(r.Group == "", "", r.Group+"/")+r.Resource, ns)
}

// recorder is a RoundTripper recording the RBAC attributes and status of
// every resource request.
type recorder struct {
	next      http.RoundTripper
	mu        sync.Mutex
	requests  map[request]int
	forbidden map[request]string
}

func (rec *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rec.next.RoundTrip(req)
	if r, ok := parse(req); ok {
		rec.mu.Lock()
		rec.requests[r]++
		if err == nil && resp.StatusCode == http.StatusForbidden {
			rec.forbidden[r] = req.URL.Path
		}
		rec.mu.Unlock()
	}
	return resp, err
}

// parse maps a request to RBAC attributes (as the API server's
// RequestInfoFactory does for resource requests).
func parse(req *http.Request) (request, bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var r request
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		r.Group = parts[1]
		parts = parts[3:]
	default:
		return r, false // discovery, healthz: non-resource URLs
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) != 2 {
		r.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) == 0 {
		return r, false
	}
	r.Resource = parts[0]
	if len(parts) > 1 {
		r.Name = parts[1]
	}
	if len(parts) > 2 {
		r.Resource += "/" + parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true":
			r.Verb = "watch"
		case r.Name == "":
			r.Verb = "list"
		default:
			r.Verb = "get"
		}
	case http.MethodPost:
		r.Verb = "create"
	case http.MethodPut:
		r.Verb = "update"
	case http.MethodPatch:
		r.Verb = "patch"
	case http.MethodDelete:
		r.Verb = lo.Ternary(r.Name == "", "deletecollection", "delete")
	default:
		return r, false
	}
	return r, true
}

// grant is one (namespace, group, resource, verb) a rule allows, with its
// resourceNames restriction.
type grant struct {
	Namespace, Group, Resource, Verb string // Namespace "" = cluster-wide
}

type grants map[grant][]string // -> resourceNames (nil = any)

func (g grants) add(ns string, rules []rbacv1.PolicyRule) {
	for _, rule := range rules {
		for _, grp := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					k := grant{ns, grp, res, v}
					if len(rule.ResourceNames) == 0 {
						g[k] = nil
					} else if names, ok := g[k]; !ok || names != nil {
						g[k] = append(names, rule.ResourceNames...)
					}
				}
			}
		}
	}
}

func (g grants) allows(r request) bool {
	for _, ns := range lo.Uniq([]string{"", r.Namespace}) {
		if names, ok := g[grant{ns, r.Group, r.Resource, r.Verb}]; ok && (names == nil || lo.Contains(names, r.Name)) {
			return true
		}
	}
	return false
}

// chartRBAC is the chart's RBAC applied to a control plane, and the
// controller settings its Deployment sets.
type chartRBAC struct {
	granted grants
	// env is the controller container's environment (FEATURE_GATES,
	// LEADER_ELECTION_NAME, CLUSTER_NAME, ...).
	env map[string]string
}

// applyChartRBAC creates the rendered ClusterRole, Roles and their bindings
// (not the aggregate-to-admin role's grants, which are not the
// controller's) and returns what they grant.
func applyChartRBAC(t *testing.T, ctx context.Context, cp *chaos.ControlPlane, objs []*unstructured.Unstructured) *chartRBAC {
	t.Helper()
	if err := cp.Kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	chart := &chartRBAC{granted: grants{}, env: map[string]string{}}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			if o.GetName() == release { // not the aggregate-to-admin role
				chart.granted.add("", convert[rbacv1.ClusterRole](t, o).Rules)
			}
		case "Role":
			chart.granted.add(o.GetNamespace(), convert[rbacv1.Role](t, o).Rules)
		case "Deployment":
			for _, e := range convert[appsv1.Deployment](t, o).Spec.Template.Spec.Containers[0].Env {
				chart.env[e.Name] = e.Value
			}
			continue
		default:
			continue
		}
		if err := cp.Kube.Create(ctx, o.DeepCopy()); err != nil {
			t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	for _, o := range objs {
		if k := o.GetKind(); k == "ClusterRoleBinding" || k == "RoleBinding" {
			if err := cp.Kube.Create(ctx, o.DeepCopy()); err != nil {
				t.Fatalf("applying %s %s: %v", k, o.GetName(), err)
			}
		}
	}
	if chart.env["LEADER_ELECTION_NAME"] == "" {
		t.Fatal("the rendered Deployment sets no LEADER_ELECTION_NAME")
	}
	return chart
}

// controllerArgs are the flags the chart's environment sets, for the
// controller flags the harness parses.
func (c *chartRBAC) controllerArgs() []string {
	args := []string{"--batch-idle-duration=1s", "--batch-max-duration=2s", "--leader-election-name=" + c.env["LEADER_ELECTION_NAME"]}
	if fg := c.env["FEATURE_GATES"]; fg != "" {
		args = append(args, "--feature-gates="+fg)
	}
	return args
}

// serviceAccountConfig is the controller's rest config: the chart's service
// account, every request recorded by rec.
func serviceAccountConfig(t *testing.T, cp *chaos.ControlPlane, rec *recorder) *rest.Config {
	cfg := cp.UserConfig(t, saUser)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec })
	return cfg
}

func newRecorder() *recorder {
	return &recorder{requests: map[request]int{}, forbidden: map[request]string{}}
}

func TestChartRBACCoversControllerRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	objs := render(t, "fake.yaml", "--set", "settings.backend=fake")
	cp := chaos.StartControlPlane(t)
	cp.StartScheduler(t)
	chart := applyChartRBAC(t, ctx, cp, objs)

	rec := newRecorder()
	cfg := serviceAccountConfig(t, cp, rec)
	logs := &chaos.LogBuffer{}
	fleet := newFleet()
	ctrl, err := chaos.StartController(ctx, chaos.ControllerOptions{
		Config: cfg, Fleet: fleet, RegistrationDelay: time.Second, Logger: logs.Logger(), Args: chart.controllerArgs(),
		LeaderElection: true, LeaderElectionNamespace: namespace, GCGracePeriod: time.Minute, GCInterval: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = ctrl.Stop()
		}
	}
	defer stop()
	logs.TailOnFailure(t, 40)

	// A provisioning round: a GPUNodeClass, a NodePool and two GPU pods.
	if err := cp.Kube.Create(ctx, nodeClass()); err != nil {
		t.Fatal(err)
	}
	if err := cp.Kube.Create(ctx, nodePool()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := cp.Kube.Create(ctx, gpuPod(fmt.Sprintf("gpu-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, ctx, 90*time.Second, "2 GPU pods running", rec, func() (bool, error) {
		var pods corev1.PodList
		if err := cp.Kube.List(ctx, &pods, client.InNamespace("default")); err != nil {
			return false, err
		}
		return lo.CountBy(pods.Items, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }) == 2, nil
	})
	// A termination with drain: delete a NodeClaim that runs a pod.
	var claims karpv1.NodeClaimList
	if err := cp.Kube.List(ctx, &claims); err != nil || len(claims.Items) == 0 {
		t.Fatalf("no NodeClaims (%v)", err)
	}
	victim := claims.Items[0]
	if err := cp.Kube.Delete(ctx, &victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 60*time.Second, "the deleted NodeClaim, its Node and its pods gone", rec, func() (bool, error) {
		var nodes corev1.NodeList
		if err := cp.Kube.List(ctx, &nodes); err != nil {
			return false, err
		}
		err := cp.Kube.Get(ctx, client.ObjectKeyFromObject(&victim), &karpv1.NodeClaim{})
		return client.IgnoreNotFound(err) == nil && err != nil && !lo.ContainsBy(nodes.Items, func(n corev1.Node) bool { return n.Name == victim.Status.NodeName }), nil
	})
	// The GPUNodeClass and NodePool go away too (finalizers, if any).
	_ = cp.Kube.Delete(ctx, nodePool())
	_ = cp.Kube.Delete(ctx, nodeClass())
	time.Sleep(3 * time.Second)
	stop()
	rec.check(t, chart.granted)
}

// check fails the test for every request the chart's RBAC forbids (or
// would not allow as parsed here) and for karpenter-gpu.io write grants
// never used, and logs the requests made and the write grants not used.
func (rec *recorder) check(t *testing.T, granted grants) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	used := lo.Keys(rec.requests)
	sort.Slice(used, func(i, j int) bool { return used[i].String() < used[j].String() })
	var denied []string
	for r, path := range rec.forbidden {
		denied = append(denied, fmt.Sprintf("%s (%s)", r, path))
	}
	sort.Strings(denied)
	for _, r := range used {
		if !granted.allows(r) && rec.forbidden[r] == "" {
			denied = append(denied, fmt.Sprintf("%s (allowed by the API server but not by the chart's rules as parsed here)", r))
		}
	}
	usedSet := map[grant]bool{}
	counts := map[string]int{}
	for _, r := range used {
		usedSet[grant{"", r.Group, r.Resource, r.Verb}] = true
		usedSet[grant{r.Namespace, r.Group, r.Resource, r.Verb}] = true
		counts[r.String()] += rec.requests[r]
	}
	// Reads are not flagged: informers list and watch (client-go's
	// watch-list sends only a watch where the server supports it, a list
	// elsewhere), and core reads most kinds only on some paths.
	reads := []string{"get", "list", "watch"}
	var unusedWrites []string
	var unusedOwn []string
	unusedReads := 0
	for g := range granted {
		if usedSet[g] {
			continue
		}
		if lo.Contains(reads, g.Verb) {
			unusedReads++
			continue
		}
		s := fmt.Sprintf("%s %s%s%s", g.Verb, lo.Ternary(g.Group == "", "", g.Group+"/"), g.Resource, lo.Ternary(g.Namespace == "", "", " in "+g.Namespace))
		unusedWrites = append(unusedWrites, s)
		if g.Group == v1alpha1.Group {
			unusedOwn = append(unusedOwn, s)
		}
	}
	sort.Strings(unusedWrites)
	keys := lo.Keys(counts)
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d distinct (verb, resource) requests by the controller:\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-60s ×%d\n", k, counts[k])
	}
	fmt.Fprintf(&b, "\n%d granted write (verb, resource) pairs not used in this run (%d unused read pairs not listed):\n  %s\n",
		len(unusedWrites), unusedReads, strings.Join(unusedWrites, "\n  "))
	t.Log(b.String())
	if len(denied) > 0 {
		t.Errorf("the controller made requests the chart's RBAC does not allow:\n  %s", strings.Join(denied, "\n  "))
	}
	// Core's rules mirror Karpenter's chart (paths a run does not take:
	// overlays, capacity buffers, lease GC); karpenter-gpu's own write grants
	// must all be exercised.
	if len(unusedOwn) > 0 {
		t.Errorf("karpenter-gpu.io write grants the controller never used (tighten the chart): %v", unusedOwn)
	}
}

// used reports whether the controller made a request.
func (rec *recorder) used(verb, group, resource string) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return lo.SomeBy(lo.Keys(rec.requests), func(r request) bool { return r.Verb == verb && r.Group == group && r.Resource == resource })
}

// eventually polls cond, failing early when the controller was forbidden
// something (it would otherwise just wait for a cache that never syncs).
func eventually(t *testing.T, ctx context.Context, timeout time.Duration, what string, rec *recorder, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ok, err := cond(); ok {
			return
		} else {
			lastErr = err
		}
		time.Sleep(500 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if ctx.Err() != nil {
		t.Fatalf("the test's budget ran out waiting for %s (last error %v); forbidden requests: %v", what, lastErr, rec.forbidden)
	}
	t.Fatalf("timed out after %s waiting for %s (last error %v); forbidden requests: %v", timeout, what, lastErr, rec.forbidden)
}

func nodeClass() *v1alpha1.GPUNodeClass { return controlplane.DiscoveryGPUNodeClass("gpu", "rbac") }

func nodePool() *karpv1.NodePool { return controlplane.L4NodePool("gpu", nodeClass()) }

func gpuPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: lo.ToPtr(false),
			Tolerations:                  []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")},
				Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")},
			}}},
		},
	}
}

func newFleet() *fake.Fleet { return fake.NewFleet(fake.Options{Seed: 1}) }
