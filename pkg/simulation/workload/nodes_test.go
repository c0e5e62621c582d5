package workload

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// The example cluster's nodes and which pods each runs, by hand: the
// g4dn.12xlarge runs train (2 CPU, 8Gi, 1 GPU), the two web replicas
// (limits 4 CPU, 16Gi, 1 GPU: requests default to them) and the device
// plugin's DaemonSet pod (no request); the m5.large runs Prometheus (500m,
// 2Gi). The Succeeded eval pod runs nowhere. DaemonSet and CPU pods count
// although the replay excludes them.
func TestLoadClusterNodes(t *testing.T) {
	c, err := LoadClusterNodes(filepath.Join(examples, "cluster-pods.json"), filepath.Join(examples, "cluster-nodes.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(ns []ClusterNode) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Node.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"ip-10-0-0-1.ec2.internal", "ip-10-0-0-2.ec2.internal"}, names(c.Nodes)); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	wantBound := map[string]string{
		"ml-research/train-x7k2p": "ip-10-0-0-1.ec2.internal", "inference/web-7d9f8c6b5-2xk4q": "ip-10-0-0-1.ec2.internal",
		"inference/web-7d9f8c6b5-9qz8m": "ip-10-0-0-1.ec2.internal", "kube-system/nvidia-device-plugin-daemonset-4kq2n": "ip-10-0-0-1.ec2.internal",
		"monitoring/prometheus-0": "ip-10-0-0-2.ec2.internal",
	}
	if diff := cmp.Diff(wantBound, c.BoundPods); diff != "" {
		t.Errorf("bound pods (-want +got):\n%s", diff)
	}
	for node, want := range map[string]map[corev1.ResourceName]string{
		"ip-10-0-0-1.ec2.internal": {corev1.ResourceCPU: "10", corev1.ResourceMemory: "40Gi", "nvidia.com/gpu": "3"},
		"ip-10-0-0-2.ec2.internal": {corev1.ResourceCPU: "500m", corev1.ResourceMemory: "2Gi"},
	} {
		sum := corev1.ResourceList{}
		for _, p := range c.Bound[node] {
			for name, v := range resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}) {
				s := sum[name]
				s.Add(v)
				sum[name] = s
			}
		}
		for name, v := range want {
			got := sum[name]
			if got.Cmp(q(v)) != 0 {
				t.Errorf("%s: pods request %s %s, want %s", node, name, got.String(), v)
			}
		}
		if g := sum["nvidia.com/gpu"]; node == "ip-10-0-0-2.ec2.internal" && !g.IsZero() {
			t.Errorf("%s: GPUs requested %s", node, g.String())
		}
	}
	if len(c.Notes) != 0 {
		t.Errorf("notes %v", c.Notes)
	}

	// Without nodes anywhere: nil, the preview compares simulated fleets.
	if c, err := LoadClusterNodes(filepath.Join(examples, "cluster-pods.json"), ""); err != nil || c != nil {
		t.Errorf("no nodes: %v, %v; want nil, nil", c, err)
	}
}

// A node list missing some pods' nodes: their requests are not counted and
// a note says so; pods bound nowhere leave the nodes empty, with a note.
func TestLoadClusterNodesNotes(t *testing.T) {
	dir := t.TempDir()
	nodes := writeFile(t, dir, "nodes.yaml", "apiVersion: v1\nkind: NodeList\nitems:\n- metadata: {name: only}\n  status:\n    allocatable: {cpu: '4', memory: 16Gi, pods: '10', nvidia.com/gpu: '1'}\n")
	c, err := LoadClusterNodes(filepath.Join(examples, "cluster-pods.json"), nodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 1 || len(c.Bound["only"]) != 0 || len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "5 pods of ") || !strings.Contains(c.Notes[0], "are bound to nodes that are not listed") {
		t.Errorf("nodes %d, bound %v, notes %v", len(c.Nodes), c.Bound, c.Notes)
	}
	c, err = LoadClusterNodes(filepath.Join(examples, "manifests.yaml"), nodes)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(c.Notes)
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "no pod of") {
		t.Errorf("manifests as the cluster: notes %v", c.Notes)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
