package main

// The cluster's own NodePools (--nodepools FILE: `kubectl get nodepools -o
// json|yaml`, a v1 List or NodePoolList of karpenter.sh/v1 NodePools, with
// the GPUNodeClass they use if given; or the NodePools of the v1 List given
// as the cluster's pods) replace the simulator's default NodePool, for both
// policies. Each NodePool goes through the rules of a scenario's nodePools
// (workload.ParseScenario: strict fields, apiVersion and kind, name, what
// the simulator cannot model, the CRD's defaults), so the two inputs take
// the same NodePools the same way; the GPUNodeClass through a scenario's
// nodeClass. What the API server adds (status, uid, resourceVersion,
// managedFields, Karpenter's hash annotations) is dropped. Before anything
// is simulated, simulation.CheckNodePools refuses a NodePool no instance
// type of the catalog satisfies.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/samber/lo"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

const (
	karpenterGroup = "karpenter.sh"
	nodePoolAPI    = karpenterGroup + "/v1"
)

// clusterPools are the NodePools (and GPUNodeClasses) a cluster export
// holds.
type clusterPools struct {
	source  string // the file they were read from
	pools   []*karpv1.NodePool
	classes []*v1alpha1.GPUNodeClass
	// origin says where each object was read ("file:line items[i]").
	origin map[string]string
	// fromCluster counts the objects taken from the --cluster (or --trace)
	// input, which its pod reader lists as ignored.
	fromCluster int
	ignored     []string
}

// loadClusterPools reads the NodePools of nodePoolsFile (--nodepools) or,
// when it is not given, those of the cluster's pod input (a v1 List of
// pods and NodePools; other inputs hold none). It returns nil when neither
// holds a NodePool.
func loadClusterPools(cluster, nodePoolsFile string) (*clusterPools, error) {
	var inCluster *clusterPools
	if cluster != "" {
		b, err := os.ReadFile(cluster)
		if err != nil {
			return nil, err
		}
		if t := bytes.TrimSpace(b); mayHoldObjects(cluster, t) && workload.IsKubeInput(t) && !workload.IsPrometheusResponse(t) {
			if inCluster, err = readPools(cluster, b, false); err != nil {
				return nil, err
			}
		}
	}
	if nodePoolsFile == "" {
		if inCluster == nil || len(inCluster.pools) == 0 {
			return nil, nil
		}
		inCluster.fromCluster = len(inCluster.pools) + len(inCluster.classes)
		return inCluster, nil
	}
	if inCluster != nil && len(inCluster.pools) > 0 {
		return nil, fmt.Errorf("--nodepools %s: %s already holds %s (e.g. %s); give the NodePools once", nodePoolsFile, cluster, plural(len(inCluster.pools), "NodePool"), inCluster.pools[0].Name)
	}
	b, err := os.ReadFile(nodePoolsFile)
	if err != nil {
		return nil, err
	}
	if !workload.IsKubeInput(bytes.TrimSpace(b)) {
		if _, err := splitPoolDocs(b); err != nil {
			return nil, fmt.Errorf("%s: %w", nodePoolsFile, err)
		}
		return nil, fmt.Errorf("%s: not Kubernetes objects (apiVersion, kind): want `kubectl get nodepools -o json|yaml` output", nodePoolsFile)
	}
	c, err := readPools(nodePoolsFile, b, true)
	if err != nil {
		return nil, err
	}
	if inCluster != nil {
		// GPUNodeClasses of the cluster List serve the NodePools of the file.
		for _, nc := range inCluster.classes {
			where := inCluster.origin["GPUNodeClass/"+nc.Name]
			if err := c.add(where, fmt.Sprintf("GPUNodeClass %q", nc.Name), "GPUNodeClass", nc.Name, func() { c.classes = append(c.classes, nc) }); err != nil {
				return nil, err
			}
		}
		c.fromCluster = len(inCluster.classes)
	}
	if len(c.pools) == 0 {
		ignored := ""
		if len(c.ignored) > 0 {
			ignored = "; it holds " + strings.Join(lo.Slice(c.ignored, 0, 5), ", ")
		}
		return nil, fmt.Errorf("%s: no NodePool (want `kubectl get nodepools -o json|yaml` output: karpenter.sh/v1 NodePools in a List or NodePoolList)%s", nodePoolsFile, ignored)
	}
	return c, nil
}

// mayHoldObjects: the input is JSON, or YAML by its name or its first line
// (not worth parsing as YAML otherwise: an Alibaba trace CSV).
func mayHoldObjects(path string, b []byte) bool {
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		return true
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	for _, l := range strings.SplitN(string(b[:min(len(b), 4096)]), "\n", 50) {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return t == "---" || strings.HasPrefix(t, "apiVersion:") || strings.HasPrefix(t, "kind:")
		}
	}
	return false
}

// poolDoc is one object of a NodePool input and where it came from.
type poolDoc struct {
	raw  []byte // JSON
	line int    // first line of its YAML document (0 for JSON)
	path string // "items[2]", "document 3 items[0]"
}

func (d poolDoc) at(source string) string {
	where := source
	if d.line > 0 {
		where = fmt.Sprintf("%s:%d", source, d.line)
	}
	if d.path != "" {
		where += " " + d.path
	}
	return where
}

// readPools reads the NodePools and GPUNodeClasses of a file of Kubernetes
// objects; other objects are listed in ignored (all listed when all is
// set, else only those of karpenter.sh and karpenter-gpu.io kinds).
func readPools(source string, b []byte, all bool) (*clusterPools, error) {
	docs, err := splitPoolDocs(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	c := &clusterPools{source: source, origin: map[string]string{}}
	for i, d := range docs {
		if len(docs) > 1 {
			d.path = fmt.Sprintf("document %d", i+1)
		}
		if err := c.object(d, "", all); err != nil {
			return nil, err
		}
	}
	sort.Slice(c.pools, func(i, j int) bool { return c.pools[i].Name < c.pools[j].Name })
	return c, nil
}

// splitPoolDocs splits YAML documents (or takes one JSON document) and
// turns each into JSON, keeping its first line.
func splitPoolDocs(b []byte) ([]poolDoc, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return []poolDoc{{raw: t}}, nil
	}
	var out []poolDoc
	var cur []string
	first := 0
	flush := func() error {
		if first > 0 {
			j, err := sigsyaml.YAMLToJSONStrict([]byte(strings.Join(cur, "")))
			if err != nil {
				return fmt.Errorf("document at line %d: %v", first, err)
			}
			if s := strings.TrimSpace(string(j)); s != "null" && s != "" {
				out = append(out, poolDoc{raw: j, line: first})
			}
		}
		cur, first = nil, 0
		return nil
	}
	for i, l := range strings.SplitAfter(string(b), "\n") {
		if t := strings.TrimRight(l, "\r\n"); t == "---" || strings.HasPrefix(t, "--- ") {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		cur = append(cur, l)
		if t := strings.TrimSpace(l); first == 0 && t != "" && !strings.HasPrefix(t, "#") {
			first = i + 1
		}
	}
	return out, flush()
}

// object reads one object; implied is the kind of a typed list's items
// (which the API server lists without apiVersion and kind).
func (c *clusterPools) object(d poolDoc, implied string, all bool) error {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   json.RawMessage   `json:"metadata"`
		Items      []json.RawMessage `json:"items"`
	}
	where := d.at(c.source)
	if err := json.Unmarshal(d.raw, &head); err != nil {
		return fmt.Errorf("%s: %v", where, strings.TrimPrefix(err.Error(), "json: "))
	}
	var meta struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(head.Metadata, &meta) // a bad name is reported by the strict decoding below
	kind := lo.CoalesceOrEmpty(head.Kind, implied)
	object := fmt.Sprintf("%s %q", lo.CoalesceOrEmpty(kind, "object"), meta.Name)
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		return fmt.Errorf("%s: %s: field %q: %v", where, object, "apiVersion", err)
	}
	switch {
	case head.Kind == "List" || (head.Kind == "NodePoolList" && gv.Group == karpenterGroup) || (head.Kind == "GPUNodeClassList" && gv.Group == v1alpha1.Group):
		if head.Kind != "List" && head.APIVersion != lo.Ternary(gv.Group == karpenterGroup, nodePoolAPI, v1alpha1.SchemeGroupVersion.String()) {
			return fmt.Errorf("%s: %s: field %q: %s; the simulator reads %s", where, head.Kind, "apiVersion", head.APIVersion, lo.Ternary(gv.Group == karpenterGroup, nodePoolAPI, v1alpha1.SchemeGroupVersion.String()))
		}
		itemKind := map[string]string{"NodePoolList": "NodePool", "GPUNodeClassList": "GPUNodeClass"}[head.Kind]
		for i, item := range head.Items {
			sub := d
			sub.raw, sub.path = item, strings.TrimSpace(fmt.Sprintf("%s items[%d]", d.path, i))
			if err := c.object(sub, itemKind, all); err != nil {
				return err
			}
		}
		return nil
	case kind == "NodePool" && (gv.Group == karpenterGroup || head.APIVersion == ""):
		if head.APIVersion != "" && head.APIVersion != nodePoolAPI {
			return fmt.Errorf("%s: %s: field %q: %s; the simulator reads %s NodePools (Karpenter 1.x: kubectl get nodepools.%s)", where, object, "apiVersion", head.APIVersion, nodePoolAPI, nodePoolAPI)
		}
		s, err := decodeAsScenario(d.raw, where, object, "nodePools", nodePoolAPI, "NodePool")
		if err != nil {
			return err
		}
		pool := s.NodePools[0]
		pool.ObjectMeta = serverFree(pool.ObjectMeta)
		return c.add(where, object, "NodePool", pool.Name, func() { c.pools = append(c.pools, pool) })
	case kind == "GPUNodeClass" && (gv.Group == v1alpha1.Group || head.APIVersion == ""):
		if head.APIVersion != "" && head.APIVersion != v1alpha1.SchemeGroupVersion.String() {
			return fmt.Errorf("%s: %s: field %q: %s; the simulator reads %s", where, object, "apiVersion", head.APIVersion, v1alpha1.SchemeGroupVersion)
		}
		s, err := decodeAsScenario(d.raw, where, object, "nodeClass", v1alpha1.SchemeGroupVersion.String(), "GPUNodeClass")
		if err != nil {
			return err
		}
		nc := s.NodeClass
		nc.ObjectMeta = serverFree(nc.ObjectMeta)
		return c.add(where, object, "GPUNodeClass", nc.Name, func() { c.classes = append(c.classes, nc) })
	}
	if all || gv.Group == karpenterGroup || gv.Group == v1alpha1.Group {
		c.ignored = append(c.ignored, strings.TrimSpace(fmt.Sprintf("%s %s", head.APIVersion, object)))
	}
	return nil
}

func (c *clusterPools) add(where, object, kind, name string, add func()) error {
	key := kind + "/" + name
	if prev, dup := c.origin[key]; dup {
		return fmt.Errorf("%s: %s: field %q: duplicate %s %q (also %s)", where, object, "metadata.name", kind, name, prev)
	}
	c.origin[key] = where
	add()
	return nil
}

// scenarioError is an error of workload.ParseScenario on the one-object
// scenario decodeAsScenario builds: `WHERE:LINE: field "nodePools[0].x": msg`.
var scenarioError = regexp.MustCompile(`(?s)^.*?:\d+: field "(?:nodePools\[0\]|nodeClass)\.?([^"]*)": (.*)$`)

// decodeAsScenario reads one NodePool (field "nodePools") or GPUNodeClass
// ("nodeClass") by the rules of a scenario's: the object, its status
// removed, is the one NodePool or the node class of a scenario that
// workload.ParseScenario reads (its trace is never read). Errors name
// where, the object and its field.
func decodeAsScenario(raw []byte, where, object, field, apiVersion, kind string) (*workload.Scenario, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("%s: %s: expected an object", where, object)
	}
	delete(m, "status") // what the cluster observed; newer Karpenters add fields to it
	if field == "nodePools" {
		// The scenario's decoding names no field for a malformed quantity.
		spec, _ := m["spec"].(map[string]any)
		limits, _ := spec["limits"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(limits)) {
			if _, err := resource.ParseQuantity(fmt.Sprint(limits[name])); err != nil {
				return nil, fmt.Errorf("%s: %s: field %q: %q is not a quantity (e.g. 16, 64Gi, 500m)", where, object, "spec.limits."+name, fmt.Sprint(limits[name]))
			}
		}
	}
	if _, ok := m["apiVersion"]; !ok {
		m["apiVersion"] = apiVersion
	}
	if _, ok := m["kind"]; !ok {
		m["kind"] = kind
	}
	var value any = m
	if field == "nodePools" {
		value = []any{m}
	}
	doc, err := json.Marshal(map[string]any{"trace": "-", field: value})
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", where, object, err)
	}
	s, err := workload.ParseScenario(bytes.NewReader(doc), where)
	if err == nil {
		return s, nil
	}
	if g := scenarioError.FindStringSubmatch(err.Error()); g != nil {
		if g[1] == "" {
			return nil, fmt.Errorf("%s: %s: %s", where, object, g[2])
		}
		return nil, fmt.Errorf("%s: %s: field %q: %s", where, object, g[1], g[2])
	}
	msg := strings.TrimPrefix(err.Error(), where)
	msg = strings.TrimPrefix(regexp.MustCompile(`^:\d+`).ReplaceAllString(msg, ""), ": ")
	return nil, fmt.Errorf("%s: %s: %s", where, object, msg)
}

// serverFree keeps of an object's metadata what its author wrote: name,
// labels, annotations (but kubectl's and Karpenter's own).
func serverFree(m metav1.ObjectMeta) metav1.ObjectMeta {
	ann := lo.OmitBy(m.Annotations, func(k, _ string) bool {
		d, _, _ := strings.Cut(k, "/")
		return d == karpenterGroup || d == "kubectl.kubernetes.io" || d == v1alpha1.Group
	})
	return metav1.ObjectMeta{Name: m.Name, Labels: m.Labels, Annotations: lo.Ternary(len(ann) > 0, ann, nil)}
}

// isDefaultPools reports whether w runs the simulator's default NodePool
// (inputs without NodePools of their own).
func isDefaultPools(w *workload.Workload) bool {
	if len(w.NodePools) != 1 {
		return false
	}
	d, got := workload.DefaultNodePool(), w.NodePools[0].DeepCopy()
	if got.Spec.Template.Spec.NodeClassRef != nil {
		got.Spec.Template.Spec.NodeClassRef.Name = d.Spec.Template.Spec.NodeClassRef.Name
	}
	return reflect.DeepEqual(got, d)
}

// apply makes the cluster's NodePools the workload's, with one GPUNodeClass
// for them: the one they reference when the input gives it, else the
// workload's (the simulator's default, named as they reference it).
func (c *clusterPools) apply(w *workload.Workload) error {
	if !isDefaultPools(w) {
		return fmt.Errorf("--nodepools %s: the input %s has NodePools of its own (%s); give the NodePools once", c.source, w.Source, poolNames(w))
	}
	byClass := map[string][]string{} // GPUNodeClass -> NodePools
	var foreign []string
	for _, np := range c.pools {
		ref := np.Spec.Template.Spec.NodeClassRef
		if (ref.Group == v1alpha1.Group || ref.Group == "") && (ref.Kind == "GPUNodeClass" || ref.Kind == "") {
			byClass[ref.Name] = append(byClass[ref.Name], np.Name)
			continue
		}
		foreign = append(foreign, fmt.Sprintf("%s (%s %s)", np.Name, schema.GroupKind{Group: ref.Group, Kind: ref.Kind}, ref.Name))
	}
	names := slices.Sorted(maps.Keys(byClass))
	given := lo.SliceToMap(c.classes, func(nc *v1alpha1.GPUNodeClass) (string, *v1alpha1.GPUNodeClass) { return nc.Name, nc })
	var notes []string
	var nc *v1alpha1.GPUNodeClass
	switch {
	case len(c.classes) > 0:
		for _, name := range names {
			if given[name] == nil {
				np := byClass[name][0]
				return fmt.Errorf("%s: NodePool %q: field %q: GPUNodeClass %q is not among the GPUNodeClasses given (%s)", c.origin["NodePool/"+np], np, "spec.template.spec.nodeClassRef.name", name, strings.Join(slices.Sorted(maps.Keys(given)), ", "))
			}
		}
		if len(names) > 1 {
			return fmt.Errorf("%s: the NodePools use %d GPUNodeClasses (%s): the simulator runs one GPUNodeClass; point the NodePools at one", c.source, len(names), classUse(byClass))
		}
		if len(names) == 1 {
			nc = given[names[0]]
		} else {
			nc = given[slices.Sorted(maps.Keys(given))[0]]
		}
		if unused := lo.Without(slices.Sorted(maps.Keys(given)), nc.Name); len(unused) > 0 {
			notes = append(notes, fmt.Sprintf("GPUNodeClass %s of %s: no NodePool uses it, not simulated", strings.Join(unused, ", "), c.source))
		}
	default:
		nc = w.NodeClass.DeepCopy()
		isDefault := reflect.DeepEqual(nc, workload.DefaultNodeClass())
		switch {
		case isDefault && len(names) == 1:
			nc.Name = names[0]
			notes = append(notes, fmt.Sprintf("GPUNodeClass %s, which the NodePools use, is not in %s: the simulator's default GPUNodeClass stands for it (default kubelet and GPU settings; add it with kubectl get nodepools,gpunodeclasses)", nc.Name, c.source))
		case len(names) > 1 || (len(names) == 1 && names[0] != nc.Name):
			notes = append(notes, fmt.Sprintf("the GPUNodeClasses the NodePools use (%s) are not in %s: %s GPUNodeClass %s stands for them", classUse(byClass), c.source, lo.Ternary(isDefault, "the simulator's default", "the input's"), nc.Name))
		}
	}
	if len(foreign) > 0 {
		notes = append(notes, fmt.Sprintf("NodePools %s use another provider's node class: simulated with karpenter-gpu's GPUNodeClass %s (instance types and prices from the catalog)", strings.Join(foreign, ", "), nc.Name))
	}
	pools := make([]*karpv1.NodePool, 0, len(c.pools))
	for _, np := range c.pools {
		np = np.DeepCopy()
		np.Spec.Template.Spec.NodeClassRef = &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name}
		pools = append(pools, np)
	}
	w.NodeClass, w.NodePools = nc, pools
	if c.fromCluster > 0 {
		w.Notes = lo.Filter(w.Notes, func(n string, _ int) bool { return !onlyPoolsIgnored(n, c.fromCluster) })
	}
	w.Notes = append(w.Notes, fmt.Sprintf("NodePools of %s: %s (GPUNodeClass %s), for both policies", c.source, poolNames(w), nc.Name))
	w.Notes = append(w.Notes, notes...)
	if len(c.ignored) > 0 {
		w.Notes = append(w.Notes, fmt.Sprintf("%s: not NodePools, not read: %s", c.source, strings.Join(lo.Slice(c.ignored, 0, 5), ", ")))
	}
	return nil
}

func classUse(byClass map[string][]string) string {
	return strings.Join(lo.Map(slices.Sorted(maps.Keys(byClass)), func(name string, _ int) string {
		return fmt.Sprintf("%s: %s", name, strings.Join(byClass[name], ", "))
	}), "; ")
}

// ignoredNote is the pod reader's note on the objects of its input that are
// not workloads (workload.FromKube).
var ignoredNote = regexp.MustCompile(`^(\d+) objects? (?:is not a workload and was|are not workloads and were) ignored: `)

// onlyPoolsIgnored: n is that note and all it counts are the n NodePools
// and GPUNodeClasses taken from the input.
func onlyPoolsIgnored(note string, n int) bool {
	g := ignoredNote.FindStringSubmatch(note)
	if g == nil {
		return false
	}
	count, _ := strconv.Atoi(g[1])
	return count == n
}

// useClusterPools reads the cluster's NodePools (--nodepools, or those of
// the input file cluster; nil when neither gives any) and makes them w's.
func useClusterPools(w *workload.Workload, cluster string, fin *finopsFlags) (*clusterPools, error) {
	c, err := loadClusterPools(cluster, fin.nodePools)
	if err != nil || c == nil {
		return nil, err
	}
	if fin.capacityTypes != "" {
		return nil, fmt.Errorf("--capacity-types sets the capacity types of the simulator's default NodePool; the NodePools of %s state their own (karpenter.sh/capacity-type)", c.source)
	}
	return c, c.apply(w)
}

// checkClusterPools refuses cluster NodePools the run could launch nothing
// for (after --prices, --region and --zones are known).
func checkClusterPools(c *clusterPools, w *workload.Workload, cfg simulation.Config) error {
	if c == nil {
		return nil
	}
	err := simulation.CheckNodePools(w.NodePools, cfg)
	if err == nil {
		return nil
	}
	// Each refused NodePool where it was read.
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []error
	for _, e := range errs {
		var npe *simulation.NodePoolError
		if errors.As(e, &npe) {
			e = fmt.Errorf("%s: %w", lo.CoalesceOrEmpty(c.origin["NodePool/"+npe.NodePool], c.source), npe)
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// initialNodePool prepares the cluster's NodePools for a preview that
// starts from the cluster's Karpenter nodes (--nodes --consolidate), which
// the simulation starts in the workload's first NodePool: the NodePool
// most of them belong to (karpenter.sh/nodepool) goes first, and the
// Karpenter nodes of the other NodePools are returned, with why, to be
// kept as they are rather than started in a NodePool that is not theirs.
// Without cluster NodePools (c nil) the default NodePool stands for all.
func (c *clusterPools) initialNodePool(w *workload.Workload, cn *workload.ClusterNodes) map[string]string {
	if c == nil || cn == nil {
		return nil
	}
	have := lo.SliceToMap(w.NodePools, func(np *karpv1.NodePool) (string, bool) { return np.Name, true })
	count := map[string]int{}
	for _, n := range cn.Nodes {
		if p := n.Node.Labels[karpv1.NodePoolLabelKey]; have[p] {
			count[p]++
		}
	}
	best := ""
	for _, p := range slices.Sorted(maps.Keys(count)) {
		if count[p] > count[best] {
			best = p
		}
	}
	if best != "" {
		i := lo.IndexOf(lo.Map(w.NodePools, func(np *karpv1.NodePool, _ int) string { return np.Name }), best)
		w.NodePools = append(append([]*karpv1.NodePool{w.NodePools[i]}, w.NodePools[:i]...), w.NodePools[i+1:]...)
	}
	first := w.NodePools[0].Name
	keep := map[string]string{}
	for _, n := range cn.Nodes {
		switch p := n.Node.Labels[karpv1.NodePoolLabelKey]; {
		case p == "" || p == first:
		case !have[p]:
			keep[n.Node.Name] = fmt.Sprintf("its NodePool %s is not among the NodePools of %s", p, c.source)
		default:
			keep[n.Node.Name] = fmt.Sprintf("its NodePool %s is not %s, the one NodePool the simulation starts the cluster's Karpenter nodes in", p, first)
		}
	}
	return keep
}
