// Package schedulerdiff checks the simulator's kube-scheduler
// (pkg/simulation/kubescheduler) against the real one: envtest's
// kube-apiserver and etcd and the kube-scheduler binary built from
// k8s.io/kubernetes v1.36.1 by tools/build-envtest.sh, run with the default
// profile and the bin-packing profile of designs/scheduler-profile.md. For
// randomized small clusters it schedules pending pods one after the other
// and asserts that the simulator picks the node kube-scheduler bound, or,
// among nodes with the same top score (kube-scheduler picks one of them at
// random), a node with the same score.
package schedulerdiff_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ks "github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/test/process"
)

const (
	namespace = "schedulerdiff"
	// cases is the number of randomized clusters; each schedules
	// podsPerCase pending pods in turn.
	cases       = 100
	podsPerCase = 2
	seed        = 20260501
	probeTaint  = "schedulerdiff/probe"
)

// schedulerName of each profile in the kube-scheduler under test.
var schedulerName = map[ks.Profile]string{ks.ProfileDefault: "default-scheduler", ks.ProfileBinPacking: "bin-packing"}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestSchedulerDifferential(t *testing.T) {
	root := repoRoot()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			t.Fatalf("control-plane binary %q not found in %q; run `make envtest-bin`", b, assets)
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cfg.QPS, cfg.Burst = 1000, 2000
	kube, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := process.AdminKubeconfig(t, env, "schedulerdiff")
	dir := t.TempDir()
	configPath := filepath.Join(dir, "scheduler.json")
	if err := os.WriteFile(configPath, schedulerConfig(t, root, kubeconfigPath), 0o600); err != nil {
		t.Fatal(err)
	}
	startScheduler(t, filepath.Join(assets, "kube-scheduler"), configPath)
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane and kube-scheduler up in %s", time.Since(start).Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(seed, 0))
	type run struct {
		profile ks.Profile
		c       *clusterCase
	}
	var runs []run
	for _, h := range handCases() {
		runs = append(runs, run{h.profile, h.c})
	}
	for i := range cases {
		runs = append(runs, run{ks.Profiles[i%len(ks.Profiles)], generate(rng, i)})
	}
	decisions := 0
	// scored counts the decisions between several feasible nodes with a
	// single top score: the ones that tell scorers apart.
	var exact, tied, unschedulable, single, scored int
	for _, r := range runs {
		profile, c, i := r.profile, r.c, r.c.index
		decisions += len(c.pending)
		name := fmt.Sprintf("case%02d-%s", i, profile)
		ok := t.Run(name, func(t *testing.T) {
			if err := cleanup(ctx, kube); err != nil {
				t.Fatal(err)
			}
			infos := c.create(ctx, t, kube)
			for j, p := range c.pending {
				p.Spec.SchedulerName = schedulerName[profile]
				p.Name = fmt.Sprintf("c%02d-pending-%d", i, j)
				if err := kube.Create(ctx, p); err != nil {
					t.Fatalf("creating %s: %v", p.Name, err)
				}
				real := waitScheduled(ctx, t, kube, p.Name, false)
				stored := &corev1.Pod{}
				if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: p.Name}, stored); err != nil {
					t.Fatal(err)
				}
				// The pod as kube-scheduler saw it when it decided: before the
				// binding (and any nominatedNodeName the binding cycle sets).
				seen := stored.DeepCopy()
				seen.Spec.NodeName, seen.Status.NominatedNodeName = "", ""
				res := ks.Schedule(profile, ks.NewPod(seen), infos)
				desc := describe(profile, stored, infos, res)
				switch {
				case res.Node == nil && real == "":
					unschedulable++
				case res.Node == nil || real == "":
					t.Fatalf("%s: kube-scheduler bound %q, simulator chose %v\n%s", p.Name, real, nodeName(res.Node), desc)
				case res.Node.Node.Name == real:
					exact++
					switch {
					case res.Scores == nil:
						single++
					case uniqueTop(res.Scores):
						scored++
					}
				default:
					realScore, found := scoreOf(res, real)
					chosenScore, _ := scoreOf(res, res.Node.Node.Name)
					if !found || realScore != chosenScore {
						t.Fatalf("%s: kube-scheduler bound %s, simulator chose %s\n%s", p.Name, real, res.Node.Node.Name, desc)
					}
					tied++
				}
				// The next pod sees this one where kube-scheduler put it.
				for _, ni := range infos {
					if ni.Node.Name == real {
						ni.AddPod(stored)
					}
				}
			}
		})
		if !ok {
			break
		}
	}
	t.Logf("%d clusters (%d built by hand), %d pods: %d same node (%d among several feasible nodes with a single top score, %d the only feasible node), %d a node with the same top score, %d unschedulable for both; %s",
		len(runs), len(runs)-cases, decisions, exact, scored, single, tied, unschedulable, time.Since(start).Round(time.Millisecond))
	if !t.Failed() && scored < decisions/3 {
		t.Errorf("only %d of %d decisions chose among several nodes with a single top score: the cases do not tell scorers apart", scored, decisions)
	}
}

// schedulerConfig is a KubeSchedulerConfiguration with the default profile
// and, under the name bin-packing, the profile documented in
// designs/scheduler-profile.md, whose weights must be the simulator's.
func schedulerConfig(t *testing.T, root, kubeconfig string) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, "designs", "scheduler-profile.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(doc), "```yaml\n")
	block, _, found2 := strings.Cut(block, "```")
	if !found || !found2 {
		t.Fatal("designs/scheduler-profile.md has no yaml block")
	}
	var documented struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Profiles   []map[string]any `json:"profiles"`
	}
	if err := yamlutil.NewYAMLOrJSONDecoder(strings.NewReader(block), 4096).Decode(&documented); err != nil {
		t.Fatalf("documented KubeSchedulerConfiguration: %v", err)
	}
	if len(documented.Profiles) != 1 {
		t.Fatalf("documented KubeSchedulerConfiguration has %d profiles, want 1", len(documented.Profiles))
	}
	checkDocumentedWeights(t, documented.Profiles[0])
	binPacking := documented.Profiles[0]
	binPacking["schedulerName"] = schedulerName[ks.ProfileBinPacking]
	out, err := json.Marshal(map[string]any{
		"apiVersion":       documented.APIVersion,
		"kind":             documented.Kind,
		"clientConnection": map[string]any{"kubeconfig": kubeconfig},
		"leaderElection":   map[string]any{"leaderElect": false},
		"profiles":         []any{map[string]any{"schedulerName": schedulerName[ks.ProfileDefault]}, binPacking},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkDocumentedWeights(t *testing.T, profile map[string]any) {
	t.Helper()
	b, _ := json.Marshal(profile)
	var p struct {
		PluginConfig []struct {
			Name string `json:"name"`
			Args struct {
				ScoringStrategy struct {
					Type      string `json:"type"`
					Resources []struct {
						Name   string `json:"name"`
						Weight int64  `json:"weight"`
					} `json:"resources"`
				} `json:"scoringStrategy"`
			} `json:"args"`
		} `json:"pluginConfig"`
	}
	if err := json.Unmarshal(b, &p); err != nil || len(p.PluginConfig) != 1 || p.PluginConfig[0].Name != "NodeResourcesFit" {
		t.Fatalf("documented profile: want one NodeResourcesFit pluginConfig, got %s (%v)", b, err)
	}
	most, want := ks.ProfileBinPacking.FitStrategy()
	s := p.PluginConfig[0].Args.ScoringStrategy
	var got []ks.ResourceWeight
	for _, r := range s.Resources {
		got = append(got, ks.ResourceWeight{Name: corev1.ResourceName(r.Name), Weight: r.Weight})
	}
	if !most || s.Type != "MostAllocated" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("documented scoring strategy %s %v differs from the simulator's bin-packing profile %v", s.Type, got, want)
	}
}

func startScheduler(t *testing.T, bin, config string) {
	t.Helper()
	process.Cmd{Name: "kube-scheduler", Path: bin, Args: []string{"--config=" + config, "--secure-port=0", "-v=1"}}.Start(t)
}

// cleanup deletes every node and pod (pods at once: no kubelet runs).
func cleanup(ctx context.Context, kube client.Client) error {
	if err := kube.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(namespace), client.GracePeriodSeconds(0)); err != nil {
		return err
	}
	return kube.DeleteAllOf(ctx, &corev1.Node{})
}

// waitScheduled waits until kube-scheduler has bound the pod (its node) or
// marked it unschedulable (""; with untilBound, only the binding counts).
func waitScheduled(ctx context.Context, t *testing.T, kube client.Client, name string, untilBound bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p := &corev1.Pod{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, p); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			return p.Spec.NodeName
		}
		for _, c := range p.Status.Conditions {
			if !untilBound && c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return ""
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("kube-scheduler did not decide on %s within 30s", name)
	return ""
}

func nodeName(ni *ks.NodeInfo) string {
	if ni == nil {
		return "<none>"
	}
	return ni.Node.Name
}

func uniqueTop(scores []int64) bool {
	best, n := int64(-1), 0
	for _, s := range scores {
		switch {
		case s > best:
			best, n = s, 1
		case s == best:
			n++
		}
	}
	return n == 1
}

func scoreOf(res ks.Result, node string) (int64, bool) {
	for i, ni := range res.Feasible {
		if ni.Node.Name == node && i < len(res.Scores) {
			return res.Scores[i], true
		}
	}
	return 0, false
}

// describe is the case as the simulator saw it, for failure messages.
func describe(profile ks.Profile, p *corev1.Pod, infos []*ks.NodeInfo, res ks.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s; pod requests %v, tolerations %v, selector %v, affinity %v\n", profile,
		p.Spec.Containers[0].Resources.Requests, p.Spec.Tolerations, p.Spec.NodeSelector, p.Spec.Affinity)
	for _, ni := range infos {
		fmt.Fprintf(&b, "  node %s: allocatable %v, labels %v, taints %v, pods %d, fits %v, score %v\n", ni.Node.Name,
			ni.Node.Status.Allocatable, ni.Node.Labels, ni.Node.Spec.Taints, ni.Pods, ks.NewPod(p).Fits(ni), func() any {
				s, ok := scoreOf(res, ni.Node.Name)
				return map[bool]any{true: s, false: "-"}[ok]
			}())
	}
	return b.String()
}
