package workload

// The cluster's actual nodes, for simulator preview: what `kubectl get nodes
// -o json|yaml` prints (a NodeList or a v1 List, also mixed with the pods,
// as `kubectl get nodes,pods -A -o json` prints them), and which of the pod
// list's pods are bound to each (spec.nodeName), so a preview can place new
// pods on the nodes' free capacity before anything is launched.

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
)

// NodesNotReplayed ends the note of a replay whose input holds Nodes.
const NodesNotReplayed = "Nodes in the input are not replayed"

// ClusterNode is one node of the input and where it was read.
type ClusterNode struct {
	Node   *corev1.Node
	Origin string
}

// BoundPod is a pod of a pod list that a node runs (spec.nodeName set, not
// Succeeded or Failed), whatever the replay does with it: DaemonSet and
// CPU-only pods take a node's capacity too.
type BoundPod struct {
	Key  string // namespace/name
	Node string
	Pod  *corev1.Pod
}

// ClusterNodes is a cluster's nodes and the pods bound to them.
type ClusterNodes struct {
	// Nodes sorted by name.
	Nodes []ClusterNode
	// Bound maps a node's name to the pods it runs.
	Bound map[string][]*corev1.Pod
	// BoundPods maps the key of every pod bound to a listed node to the
	// node's name.
	BoundPods map[string]string
	// Notes say what of the input could not be used.
	Notes []string
}

// node reads one Node.
func (k *kubeReader) node(d kubeDoc, n *corev1.Node) error {
	object := objectName("Node", "", n.Name)
	if n.Name == "" {
		return k.errorf(d, object, "metadata.name", "required")
	}
	if prev, dup := k.nodeSeen[n.Name]; dup {
		return k.errorf(d, object, "metadata.name", "node %s already defined (%s)", n.Name, prev)
	}
	if len(n.Status.Allocatable) == 0 {
		return k.errorf(d, object, "status.allocatable", "required (the node's schedulable capacity, as `kubectl get nodes -o json` prints it)")
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
		if q, ok := n.Status.Allocatable[name]; !ok || q.Sign() <= 0 {
			return k.errorf(d, object, "status.allocatable."+string(name), "required and positive")
		}
	}
	for name, q := range n.Status.Allocatable {
		if q.Sign() < 0 {
			return k.errorf(d, object, "status.allocatable."+string(name), "negative quantity %s", q.String())
		}
	}
	k.nodeSeen[n.Name] = k.origin(d)
	k.out.Nodes = append(k.out.Nodes, ClusterNode{Node: n.DeepCopy(), Origin: k.origin(d)})
	return nil
}

// readKubeFile reads a file of Kubernetes objects without requiring pods.
func readKubeFile(path string) (*KubeObjects, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !IsKubeInput(bytes.TrimSpace(b)) {
		return nil, fmt.Errorf("%s: not Kubernetes objects (apiVersion, kind): want `kubectl get nodes -o json|yaml` or `kubectl get pods -A -o json|yaml` output", path)
	}
	return readKube(b, path, TraceOptions{})
}

// LoadClusterNodes reads the nodes of a cluster for simulator preview: from
// nodesPath (`kubectl get nodes -o json|yaml`) when given, else those of
// podsPath (a v1 List of nodes and pods), with the pods podsPath binds to
// them. It returns nil when neither file holds a Node. podsPath must then
// be Kubernetes objects (a pod list): nothing else says which pods run
// where.
func LoadClusterNodes(podsPath, nodesPath string) (*ClusterNodes, error) {
	b, err := os.ReadFile(podsPath)
	if err != nil {
		return nil, err
	}
	var pods *KubeObjects
	if t := bytes.TrimSpace(b); IsKubeInput(t) && !IsPrometheusResponse(t) {
		if pods, err = readKube(b, podsPath, TraceOptions{}); err != nil {
			return nil, err
		}
	}
	nodes := []ClusterNode(nil)
	if pods != nil {
		nodes = pods.Nodes
	}
	if nodesPath != "" {
		if pods == nil {
			return nil, fmt.Errorf("--nodes %s: the cluster input %s is not a Kubernetes pod list (kubectl get pods -A -o json|yaml), so which pods run on which node is unknown", nodesPath, podsPath)
		}
		if len(nodes) > 0 {
			return nil, fmt.Errorf("--nodes %s: %s already holds %d Nodes (e.g. %s); give the nodes once", nodesPath, podsPath, len(nodes), nodes[0].Node.Name)
		}
		objs, err := readKubeFile(nodesPath)
		if err != nil {
			return nil, err
		}
		if len(objs.Nodes) == 0 {
			return nil, fmt.Errorf("%s: no Node (want `kubectl get nodes -o json|yaml` output)", nodesPath)
		}
		nodes = objs.Nodes
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node.Name < nodes[j].Node.Name })
	c := &ClusterNodes{Nodes: nodes, Bound: map[string][]*corev1.Pod{}, BoundPods: map[string]string{}}
	known := lo.SliceToMap(nodes, func(n ClusterNode) (string, bool) { return n.Node.Name, true })
	var elsewhere []string
	for _, bp := range pods.Bound {
		if !known[bp.Node] {
			elsewhere = append(elsewhere, fmt.Sprintf("%s on %s", bp.Key, bp.Node))
			continue
		}
		c.Bound[bp.Node] = append(c.Bound[bp.Node], bp.Pod)
		c.BoundPods[bp.Key] = bp.Node
	}
	if len(elsewhere) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d pods of %s are bound to nodes that are not listed (%s): their requests are not counted", len(elsewhere), podsPath, strings.Join(lo.Slice(elsewhere, 0, 3), ", ")))
	}
	if len(pods.Bound) == 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("no pod of %s is bound to a node (spec.nodeName): the nodes are taken as empty", podsPath))
	}
	return c, nil
}
