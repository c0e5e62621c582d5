// Package e2e runs the controller binary as a process against a real control
// plane (etcd, kube-apiserver, kube-scheduler and kube-controller-manager
// built from source by tools/build-envtest.sh) with the fake backend, whose
// registrar plays the kubelets. It checks the whole loop a user sees: a GPU
// Deployment gets GPU nodes of the expected types, the real kube-scheduler
// binds the pods to them, the controller's /metrics reports cost and GPU
// figures, and scaling to zero removes the GPU nodes.
package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/status"
	"github.com/samber/lo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/process"
)

func TestEndToEnd(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := controlplane.Assets("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")
	if err != nil {
		t.Fatal(err)
	}
	tm := process.NewTimer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// Control plane with the CRDs the Helm chart installs.
	env := &envtest.Environment{BinaryAssetsDirectory: assets, CRDDirectoryPaths: crdDirs(root), ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfigPath := process.AdminKubeconfig(t, env, "e2e-admin")
	kube, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	tm.Mark("etcd and kube-apiserver up, CRDs installed")
	t.Cleanup(func() {
		if t.Failed() {
			dumpState(t, kube)
		}
	})

	process.KubeScheduler(assets, kubeconfigPath).Start(t)
	process.KubeControllerManager(assets, kubeconfigPath, "deployment", "replicaset", "serviceaccount").Start(t)

	controllerBin := process.BuildController(t, root)
	tm.Mark("controller binary built")
	metricsPort := process.FreePort(t)
	process.Cmd{Name: "controller", Path: controllerBin, Env: []string{"KUBECONFIG=" + kubeconfigPath}, Args: []string{
		"--backend=fake", "--cluster-name=e2e", "--disable-leader-election=true",
		fmt.Sprintf("--metrics-port=%d", metricsPort), fmt.Sprintf("--health-probe-port=%d", process.FreePort(t)),
		"--batch-idle-duration=1s", "--batch-max-duration=3s", "--fake-registration-delay=1s", "--log-level=debug"}}.Start(t)
	tm.Mark("kube-scheduler, kube-controller-manager and controller started")

	nodeClass := controlplane.DiscoveryGPUNodeClass("gpu", "e2e")
	idle := karpv1.MustParseNillableDuration("30s")
	nodeClass.Spec.GPU.IdleAfter = &idle
	nodePool := controlplane.L4NodePool("gpu", nodeClass)
	for _, o := range []client.Object{nodeClass, nodePool} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatalf("creating %T: %v", o, err)
		}
	}
	replicas := int32(3)
	labels := map[string]string{"app": "inference"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "inference", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: lo.ToPtr(false),
					Tolerations:                  []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers: []corev1.Container{{Name: "model", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")},
						Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")},
					}}},
				},
			},
		},
	}
	if err := kube.Create(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	tm.Mark("GPUNodeClass, NodePool and a 3-replica 1-GPU Deployment applied")

	// Nodes of the expected type appear and the real scheduler binds the pods.
	process.Eventually(t, 3*time.Minute, "3 running pods bound to GPU nodes", func() (bool, error) {
		var pods corev1.PodList
		if err := kube.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(labels)); err != nil {
			return false, err
		}
		running := lo.CountBy(pods.Items, func(p corev1.Pod) bool { return p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning })
		return running == 3, fmt.Errorf("%d/%d pods running", running, len(pods.Items))
	})
	tm.Mark("all pods bound by kube-scheduler and running")
	var nodes corev1.NodeList
	if err := kube.List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		// One L4 GPU per pod: the cheapest amd64 L4 type holding 2 CPU / 8Gi
		// is g6.xlarge. Core alone packs the three pods onto one g6.12xlarge;
		// the GPU packer splits them (see designs/packing.md).
		if it := n.Labels[corev1.LabelInstanceTypeStable]; it != "g6.xlarge" {
			t.Errorf("node %s is %s, want g6.xlarge", n.Name, it)
		}
		if n.Labels[v1alpha1.LabelGPUName] != "l4" {
			t.Errorf("node %s lacks gpu-name=l4: %v", n.Name, n.Labels)
		}
		if lo.ContainsBy(n.Spec.Taints, func(tn corev1.Taint) bool { return tn.Key == karpv1.UnregisteredTaintKey }) {
			t.Errorf("node %s still carries the unregistered taint", n.Name)
		}
	}
	t.Logf("nodes: %v", lo.Map(nodes.Items, func(n corev1.Node, _ int) string { return n.Name + "=" + n.Labels[corev1.LabelInstanceTypeStable] }))

	assertMetrics(t, ctx, metricsPort)
	tm.Mark("metrics scraped")

	// Scale to zero: the GPU nodes go away.
	if err := kube.Get(ctx, client.ObjectKeyFromObject(deploy), deploy); err != nil {
		t.Fatal(err)
	}
	deploy.Spec.Replicas = lo.ToPtr(int32(0))
	if err := kube.Update(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	process.Eventually(t, 4*time.Minute, "GPU nodes removed after scaling to zero", func() (bool, error) {
		var nodes corev1.NodeList
		var claims karpv1.NodeClaimList
		if err := kube.List(ctx, &nodes); err != nil {
			return false, err
		}
		if err := kube.List(ctx, &claims); err != nil {
			return false, err
		}
		return len(nodes.Items) == 0 && len(claims.Items) == 0, fmt.Errorf("%d nodes, %d nodeclaims left", len(nodes.Items), len(claims.Items))
	})
	tm.Mark("scaled to zero: every GPU node and NodeClaim removed")
}

// crdDirs are the CRDs the Helm chart installs in a cluster without
// Karpenter: its own (crds/) and core's karpenter.sh CRDs
// (files/karpenter-crds, crds.karpenter.install).
func crdDirs(root string) []string {
	chart := filepath.Join(root, "charts", "karpenter-gpu")
	return []string{filepath.Join(chart, "crds"), filepath.Join(chart, "files", "karpenter-crds")}
}

func assertMetrics(t *testing.T, ctx context.Context, port int) {
	t.Helper()
	var body string
	process.Eventually(t, 90*time.Second, "karpenter_gpu_ metrics with the fleet's cost", func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && metricValue(body, "karpenter_gpu_fleet_cost_per_hour") > 0, err
	})
	// Three g6.xlarge on demand at $0.8048/h each.
	if got := metricValue(body, "karpenter_gpu_fleet_cost_per_hour"); got < 2.41 || got > 2.42 {
		t.Errorf("karpenter_gpu_fleet_cost_per_hour = %v, want 3 × 0.8048", got)
	}
	for name, want := range map[string]float64{"karpenter_gpu_gpus_paid": 3, "karpenter_gpu_gpus_requested": 3, "karpenter_gpu_fleet_nodes": 3} {
		if got := metricValue(body, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Core alone would launch one g6.12xlarge ($4.6016/h) for the three pods;
	// the packer's three g6.xlarge save $2.1872/h.
	if got := metricValue(body, "karpenter_gpu_packing_estimated_savings_per_hour"); got < 2.18 || got > 2.19 {
		t.Errorf("karpenter_gpu_packing_estimated_savings_per_hour = %v, want 4.6016 - 2.4144", got)
	}
	if got := metricValue(body, "karpenter_gpu_namespace_gpu_cost_per_hour"); got < 2.41 || got > 2.42 {
		t.Errorf("karpenter_gpu_namespace_gpu_cost_per_hour = %v, want the whole fleet's cost (all GPUs requested by default/)", got)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "karpenter_gpu_") {
			t.Log(line)
		}
	}
}

// metricValue sums the samples of a metric family in Prometheus text format.
func metricValue(body, name string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

// dumpState logs what a person would look at with kubectl when the run fails.
func dumpState(t *testing.T, kube client.Client) {
	ctx := context.Background()
	var nodes corev1.NodeList
	var pods corev1.PodList
	var claims karpv1.NodeClaimList
	_ = kube.List(ctx, &nodes)
	_ = kube.List(ctx, &pods)
	_ = kube.List(ctx, &claims)
	for _, n := range nodes.Items {
		t.Logf("node %s taints=%v allocatable=%v conditions=%v", n.Name, n.Spec.Taints, n.Status.Allocatable,
			lo.Map(n.Status.Conditions, func(c corev1.NodeCondition, _ int) string { return string(c.Type) + "=" + string(c.Status) }))
	}
	for _, c := range claims.Items {
		t.Logf("nodeclaim %s conditions=%v", c.Name, lo.Map(c.Status.Conditions, func(c status.Condition, _ int) string { return c.Type + "=" + string(c.Status) + "(" + c.Message + ")" }))
	}
	for _, p := range pods.Items {
		t.Logf("pod %s/%s node=%q phase=%s conditions=%v", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase,
			lo.Map(p.Status.Conditions, func(c corev1.PodCondition, _ int) string {
				return string(c.Type) + "=" + string(c.Status) + "(" + c.Message + ")"
			}))
	}
}
