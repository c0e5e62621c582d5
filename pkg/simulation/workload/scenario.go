package workload

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	yaml "go.yaml.in/yaml/v3"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/trace"
)

// Scenario is the native input format: the cluster's provisioning
// configuration and either pod groups or a trace to replay. Example:
//
//	nodeClass:                 # optional GPUNodeClass; default: "default"
//	  metadata: {name: default}
//	  spec: {role: R, subnetSelectorTerms: [...], securityGroupSelectorTerms: [...]}
//	nodePools:                 # optional list of karpenter.sh/v1 NodePools
//	  - metadata: {name: gpu}  # nodeClassRef defaults to the nodeClass
//	    spec: {template: {spec: {requirements: [...]}}, disruption: {...}}
//	podGroups:                 # or: trace: pods.csv (relative to this file)
//	  - name: train            # pods are named train-0, train-1, ...
//	    count: 4
//	    arrival: 10m           # first pod; default 0s
//	    interval: 30s          # between pods of the group; default 0s
//	    duration: 2h           # lifetime; omit for pods that never leave
//	    requests: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "1"}
//	    gpuModels: [T4]        # trace GPU models, through the GPU map
//	    nodeSelector: {karpenter-gpu.io/gpu-name: a10g}
//	    requirements: [{key: karpenter-gpu.io/gpu-memory, operator: Gt, values: ["20000"]}]
//	    tolerations: [{key: nvidia.com/gpu, operator: Exists}]
//	    labels: {app: train}
//	    annotations: {karpenter.sh/do-not-disrupt: "true"}
//	    gang: true             # all-or-nothing: the pods run together or not at all
//	    minMembers: 4          # of a gang: how many must run together; default count
//
// A gang's pods carry the pod-group label karpenter-gpu.io/pod-group (the
// group's name) and karpenter-gpu.io/pod-group-min-members, and under the
// karpenter-gpu policy the pod-group scheduling gate, so karpenter-gpu
// provisions them all-or-nothing; a gang's duration counts from when
// minMembers of its pods run (training makes progress only then).
//
// Decoding is strict: an unknown field, a duplicate key, a negative
// duration or a malformed quantity is an error naming the file, line and
// field.
type Scenario struct {
	Source    string
	Trace     string // resolved path, "" when the scenario has pod groups
	NodeClass *v1alpha1.GPUNodeClass
	NodePools []*karpv1.NodePool
	PodGroups []PodGroup
}

// PodGroup is a set of identical pods arriving at a fixed interval.
type PodGroup struct {
	Name         string                           `json:"name"`
	Count        int                              `json:"count"`
	Arrival      metav1.Duration                  `json:"arrival"`
	Interval     metav1.Duration                  `json:"interval"`
	Duration     *metav1.Duration                 `json:"duration,omitempty"`
	Requests     corev1.ResourceList              `json:"requests"`
	GPUModels    []string                         `json:"gpuModels,omitempty"`
	NodeSelector map[string]string                `json:"nodeSelector,omitempty"`
	Requirements []corev1.NodeSelectorRequirement `json:"requirements,omitempty"`
	Tolerations  []corev1.Toleration              `json:"tolerations,omitempty"`
	Labels       map[string]string                `json:"labels,omitempty"`
	Annotations  map[string]string                `json:"annotations,omitempty"`
	// Class is the eviction model's workload class (batch, service;
	// default batch, as for bare pods); CheckpointInterval how often a batch
	// group checkpoints (a duration or "never"; default --checkpoint-interval).
	Class              string `json:"class,omitempty"`
	CheckpointInterval string `json:"checkpointInterval,omitempty"`
	// Gang makes the group one all-or-nothing pod group; MinMembers (of a
	// gang only; default Count) is how many must run together.
	Gang       bool `json:"gang,omitempty"`
	MinMembers int  `json:"minMembers,omitempty"`

	line      int
	modelLine int
}

// LoadScenario reads a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseScenario(bytes.NewReader(b), path)
}

// ParseScenario reads a scenario; source names it in errors and anchors a
// relative trace path.
func ParseScenario(r io.Reader, source string) (*Scenario, error) {
	f, root, kvs, err := parseYAMLMapping(r, source)
	if err != nil {
		return nil, err
	}
	s := &Scenario{Source: source}
	var podGroupsNode, traceNode *yaml.Node
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "trace":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, f.errorf(v, "trace", "expected a file path")
			}
			traceNode = v
			s.Trace = v.Value
			if !filepath.IsAbs(s.Trace) {
				s.Trace = filepath.Join(filepath.Dir(source), s.Trace)
			}
		case "nodeClass":
			nc := &v1alpha1.GPUNodeClass{}
			if err := f.decodeStrict(v, "nodeClass", nc); err != nil {
				return nil, err
			}
			if err := checkTypeMeta(f, v, "nodeClass", nc.APIVersion, nc.Kind, v1alpha1.SchemeGroupVersion.String(), "GPUNodeClass"); err != nil {
				return nil, err
			}
			nc.TypeMeta = metav1.TypeMeta{}
			if nc.Name == "" {
				nc.Name = DefaultNodeClassName
			}
			s.NodeClass = nc
		case "nodePools":
			names := map[string]bool{}
			if _, err := decodeList(f, v, "nodePools", func(item *yaml.Node, field string, np *karpv1.NodePool) error {
				if err := checkTypeMeta(f, item, field, np.APIVersion, np.Kind, "karpenter.sh/v1", "NodePool"); err != nil {
					return err
				}
				np.TypeMeta = metav1.TypeMeta{}
				if np.Name == "" {
					return f.errorf(item, field+".metadata.name", "required")
				}
				if names[np.Name] {
					return f.errorf(item, field+".metadata.name", "duplicate NodePool %q", np.Name)
				}
				names[np.Name] = true
				if np.Spec.Template.Spec.TerminationGracePeriod != nil {
					return f.errorf(findPath(item, "spec.template.spec.terminationGracePeriod"), field+".spec.template.spec.terminationGracePeriod",
						"not supported by the simulator (the in-memory API server stamps deletions with wall-clock time)")
				}
				expire := findPath(item, "spec.template.spec.expireAfter") != findPath(item, "spec.template.spec")
				consolidate := findPath(item, "spec.disruption.consolidateAfter") != findPath(item, "spec.disruption")
				defaultNodePool(np, func(field string) bool {
					return map[string]bool{"expireAfter": expire, "consolidateAfter": consolidate}[field]
				})
				s.NodePools = append(s.NodePools, np)
				return nil
			}); err != nil {
				return nil, err
			}
		case "podGroups":
			podGroupsNode = v
		default:
			return nil, f.errorf(k, k.Value, "unknown field (want trace, nodeClass, nodePools, podGroups)")
		}
	}
	if podGroupsNode != nil && traceNode != nil {
		return nil, f.errorf(podGroupsNode, "podGroups", "a scenario has either podGroups or trace, not both")
	}
	if podGroupsNode == nil && traceNode == nil {
		return nil, fmt.Errorf("%s:%d: field %q: required (or trace)", source, root.Line, "podGroups")
	}
	if podGroupsNode != nil {
		names := map[string]bool{}
		items, err := decodeList(f, podGroupsNode, "podGroups", func(item *yaml.Node, field string, g *PodGroup) error {
			g.line = item.Line
			g.modelLine = findPath(item, "gpuModels").Line
			if err := validatePodGroup(f, item, field, g); err != nil {
				return err
			}
			if names[g.Name] {
				return f.errorf(findPath(item, "name"), field+".name", "duplicate pod group %q", g.Name)
			}
			names[g.Name] = true
			s.PodGroups = append(s.PodGroups, *g)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(s.PodGroups) == 0 {
			return nil, f.errorf(podGroupsNode, "podGroups", "empty")
		}
		for i, item := range items {
			if err := checkGangFits(f, item, fmt.Sprintf("podGroups[%d]", i), &s.PodGroups[i], s.NodePools); err != nil {
				return nil, err
			}
		}
	}
	if s.NodeClass == nil {
		s.NodeClass = DefaultNodeClass()
	}
	for _, np := range s.NodePools {
		if np.Spec.Template.Spec.NodeClassRef == nil {
			np.Spec.Template.Spec.NodeClassRef = &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: s.NodeClass.Name}
		}
	}
	return s, nil
}

func checkTypeMeta(f yamlFile, n *yaml.Node, field, apiVersion, kind, wantAPIVersion, wantKind string) error {
	if apiVersion != "" && apiVersion != wantAPIVersion {
		return f.errorf(findPath(n, "apiVersion"), field+".apiVersion", "want %s", wantAPIVersion)
	}
	if kind != "" && kind != wantKind {
		return f.errorf(findPath(n, "kind"), field+".kind", "want %s", wantKind)
	}
	return nil
}

func validatePodGroup(f yamlFile, n *yaml.Node, field string, g *PodGroup) error {
	at := func(sub string) *yaml.Node { return findPath(n, sub) }
	if g.Name == "" {
		return f.errorf(n, field+".name", "required")
	}
	if errs := validationErrors(g.Name + "-0"); errs != "" {
		return f.errorf(at("name"), field+".name", "%q does not make valid pod names: %s", g.Name, errs)
	}
	if g.Count < 1 {
		return f.errorf(at("count"), field+".count", "must be at least 1, got %d", g.Count)
	}
	for _, d := range []struct {
		name string
		v    *metav1.Duration
	}{{"arrival", &g.Arrival}, {"interval", &g.Interval}, {"duration", g.Duration}} {
		if d.v != nil && d.v.Duration < 0 {
			return f.errorf(at(d.name), field+"."+d.name, "negative duration %s", d.v.Duration)
		}
	}
	if len(g.Requests) == 0 {
		return f.errorf(n, field+".requests", "required")
	}
	if g.Class != "" {
		if _, err := evictioncost.ParseClass(g.Class); err != nil {
			return f.errorf(at("class"), field+".class", "%v", err)
		}
	}
	if g.CheckpointInterval != "" {
		if _, err := evictioncost.ParseCheckpointInterval(g.CheckpointInterval); err != nil {
			return f.errorf(at("checkpointInterval"), field+".checkpointInterval", "%v", err)
		}
	}
	if _, err := (evictioncost.Model{}).ProfileOf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: g.Name, Annotations: g.Annotations}}); err != nil {
		return f.errorf(at("annotations"), field+".annotations", "%v", err)
	}
	for _, name := range lo.Keys(g.Requests) {
		if q := g.Requests[name]; q.Sign() < 0 {
			return f.errorf(at("requests"), field+".requests."+string(name), "negative quantity %s", q.String())
		}
	}
	if q, ok := g.Requests[v1alpha1.ResourceNVIDIAGPU]; ok && q.MilliValue()%1000 != 0 {
		return f.errorf(at("requests"), field+".requests."+v1alpha1.ResourceNVIDIAGPU, "must be a whole number, got %s", q.String())
	}
	if g.MinMembers != 0 && !g.Gang {
		return f.errorf(at("minMembers"), field+".minMembers", "only a gang (gang: true) has minMembers")
	}
	if g.Gang {
		if g.MinMembers < 0 || g.MinMembers > g.Count {
			return f.errorf(at("minMembers"), field+".minMembers", "must be from 1 to the group's count %d, got %d", g.Count, g.MinMembers)
		}
		if errs := validation.IsValidLabelValue(g.Name); len(errs) > 0 {
			return f.errorf(at("name"), field+".name", "a gang's name is its pod-group label value: %s", strings.Join(errs, "; "))
		}
	}
	for i, r := range g.Requirements {
		if r.Key == "" {
			return f.errorf(at("requirements"), fmt.Sprintf("%s.requirements[%d].key", field, i), "required")
		}
		switch r.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		default:
			return f.errorf(at("requirements"), fmt.Sprintf("%s.requirements[%d].operator", field, i), "unknown operator %q", r.Operator)
		}
	}
	return nil
}

// validationErrors returns why name is not a valid DNS subdomain (pod
// names), or "".
func validationErrors(name string) string {
	return strings.Join(validation.IsDNS1123Subdomain(name), "; ")
}

// Workload expands the scenario: pod groups into pods (GPU models through
// gpuMap; nil ignores them), or the trace it names. The scenario's node
// class and NodePools (default ones when absent) replace the defaults.
func (s *Scenario) Workload(opts TraceOptions) (*Workload, error) {
	gpuMap := opts.GPUMap
	var w *Workload
	if s.Trace != "" {
		pods, err := loadTrace(s.Trace)
		if err != nil {
			return nil, err
		}
		if w, err = FromTrace(pods, s.Trace, opts); err != nil {
			return nil, err
		}
		w.Source = fmt.Sprintf("%s (trace %s)", s.Source, s.Trace)
	} else {
		w = &Workload{Source: s.Source, GPUMap: gpuMap, IgnoredGPUModels: gpuMap == nil}
		for _, g := range s.PodGroups {
			var reqs []corev1.NodeSelectorRequirement
			if len(g.GPUModels) > 0 && gpuMap != nil {
				r, err := gpuMap.Requirements(g.GPUModels)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: field %q: %w", s.Source, g.modelLine, g.Name+".gpuModels", err)
				}
				reqs = r
			}
			for i := 0; i < g.Count; i++ {
				arrival := g.Arrival.Duration + time.Duration(i)*g.Interval.Duration
				p := PodSpec{
					Name:         fmt.Sprintf("%s-%d", g.Name, i),
					Group:        g.Name,
					Origin:       fmt.Sprintf("%s:%d", s.Source, g.line),
					Arrival:      arrival,
					Deletion:     Forever,
					Requests:     g.Requests.DeepCopy(),
					NodeSelector: g.NodeSelector,
					Requirements: append(append([]corev1.NodeSelectorRequirement{}, g.Requirements...), reqs...),
					Tolerations:  g.Tolerations,
					Labels:       g.Labels,
					Annotations:  g.Annotations,
				}
				if g.Duration != nil {
					p.Deletion = arrival + g.Duration.Duration
				}
				if g.Gang {
					p.Gang = &Gang{Name: g.Name, Size: g.Count, MinMembers: lo.Ternary(g.MinMembers > 0, g.MinMembers, g.Count)}
				}
				if g.Class != "" || g.CheckpointInterval != "" {
					p.Annotations = lo.Assign(g.Annotations)
					if g.Class != "" {
						p.Annotations[evictioncost.AnnotationWorkloadClass] = g.Class
					}
					if g.CheckpointInterval != "" {
						p.Annotations[evictioncost.AnnotationCheckpointInterval] = g.CheckpointInterval
					}
				}
				w.Pods = append(w.Pods, p)
			}
		}
		w.SortPods()
	}
	w.NodeClass = s.NodeClass
	if len(s.NodePools) > 0 {
		w.NodePools = s.NodePools
	} else {
		w.NodePools = []*karpv1.NodePool{DefaultNodePool()}
		w.NodePools[0].Spec.Template.Spec.NodeClassRef.Name = s.NodeClass.Name
	}
	sort.Slice(w.NodePools, func(i, j int) bool { return w.NodePools[i].Name < w.NodePools[j].Name })
	return w, nil
}

// loadTrace parses an Alibaba pod list file.
func loadTrace(path string) ([]trace.Pod, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return trace.Parse(f, path)
}

// LoadInput reads --trace FILE, recognised by its content: Kubernetes
// objects (a `kubectl get pods -o json|yaml` pod list, Pods, Deployments,
// StatefulSets, Jobs, JobSets; JSON or YAML with apiVersion and kind), a
// Prometheus range-query response (JSON with status and data; see
// prometheus.go), a scenario (other YAML), else an Alibaba pod list CSV.
func LoadInput(path string, opts TraceOptions) (*Workload, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if IsPrometheusResponse(t) {
			return FromPrometheusFile(t, path, opts)
		}
		if IsKubeInput(t) {
			return FromKube(t, path, opts)
		}
		return nil, fmt.Errorf("%s: JSON that is neither Kubernetes objects (apiVersion, kind) nor a Prometheus API response (status, data)", path)
	}
	yamlExt := map[string]bool{".yaml": true, ".yml": true}[strings.ToLower(filepath.Ext(path))]
	if (yamlExt || looksLikeYAMLObject(b)) && IsKubeInput(b) {
		return FromKube(b, path, opts)
	}
	if yamlExt {
		s, err := ParseScenario(bytes.NewReader(b), path)
		if err != nil {
			return nil, err
		}
		return s.Workload(opts)
	}
	pods, err := trace.Parse(bytes.NewReader(b), path)
	if err != nil {
		return nil, err
	}
	return FromTrace(pods, path, opts)
}

// looksLikeYAMLObject: the first line that is not blank or a comment starts
// a YAML document or mapping of Kubernetes objects (kubectl -o yaml output
// saved under any name).
func looksLikeYAMLObject(b []byte) bool {
	for _, l := range strings.SplitN(string(b[:min(len(b), 4096)]), "\n", 50) {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		return t == "---" || strings.HasPrefix(t, "apiVersion:") || strings.HasPrefix(t, "kind:")
	}
	return false
}

// DefaultInput is the bundled Alibaba v2023 default pod list (8,152 pods,
// embedded by pkg/trace; provenance in pkg/trace/data/README.md).
func DefaultInput(opts TraceOptions) (*Workload, error) {
	pods, err := trace.Embedded(trace.DefaultPodList)
	if err != nil {
		return nil, err
	}
	return FromTrace(pods, trace.DefaultPodList, opts)
}

// checkGangFits refuses a gang whose pods together request more of a
// resource than every NodePool's limits allow: karpenter-gpu could never
// launch it whole (stock would launch part of it and wait forever).
// Scenarios without NodePools run the default one, which has no limits.
func checkGangFits(f yamlFile, n *yaml.Node, field string, g *PodGroup, pools []*karpv1.NodePool) error {
	if !g.Gang || len(pools) == 0 {
		return nil
	}
	var why []string
	for _, np := range pools {
		over := ""
		for _, name := range lo.Keys(np.Spec.Limits) {
			req, ok := g.Requests[name]
			if !ok {
				continue
			}
			total := req.DeepCopy()
			total.Mul(int64(g.Count))
			if limit := np.Spec.Limits[name]; total.Cmp(limit) > 0 {
				over = fmt.Sprintf("NodePool %q limits %s to %s", np.Name, name, limit.String())
				break
			}
		}
		if over == "" {
			return nil
		}
		why = append(why, over)
	}
	sort.Strings(why)
	return f.errorf(findPath(n, "count"), field+".count", "the gang's %d pods need more than any NodePool allows: %s", g.Count, strings.Join(why, "; "))
}
