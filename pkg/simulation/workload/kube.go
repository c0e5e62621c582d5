package workload

// Kubernetes objects as input: what `kubectl get pods -A -o json|yaml`
// prints (a v1 List or a PodList), single Pods, and workload manifests
// (Deployment, StatefulSet, Job, JobSet) expanded to the pods their
// controllers would create. Decoding goes through client-go's scheme with
// strict field checking, as the API server decodes; JobSet
// (jobset.x-k8s.io/v1alpha2) through JobSet's own Go types
// (sigs.k8s.io/jobset/api/jobset/v1alpha2), defaulted as its CRD's schema
// defaults it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/samber/lo"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	resourcehelper "k8s.io/component-helpers/resource"
	jobsetv1alpha2 "sigs.k8s.io/jobset/api/jobset/v1alpha2"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// Owner kinds whose pods are services (a replica restarts when evicted);
// pods of any other owner, and bare pods, are batch.
var serviceOwners = map[string]bool{"ReplicaSet": true, "Deployment": true, "StatefulSet": true, "ReplicationController": true}

// MaxKubePods bounds the pods one input of Kubernetes objects may expand to.
const MaxKubePods = 100000

// JobSetGroup is the API group of JobSet.
const JobSetGroup = "jobset.x-k8s.io"

// jobSetAPI names the JobSet API the reader knows: a field added by a
// later JobSet release is an unknown field to it. Keep it in step with
// go.mod.
const jobSetAPI = "JobSet jobset.x-k8s.io/v1alpha2 of sigs.k8s.io/jobset v0.11.1"

// kubeScheme is client-go's scheme (the built-in kinds) and JobSet.
var kubeScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	lo.Must0(scheme.AddToScheme(s))
	lo.Must0(jobsetv1alpha2.AddToScheme(s))
	return s
}()

var strictDecoder = serializer.NewCodecFactory(kubeScheme, serializer.EnableStrict).UniversalDeserializer()

// kubeDoc is one object of an input with where it came from.
type kubeDoc struct {
	raw  []byte
	line int // first line of its YAML document (0 for JSON)
	path string
}

func (d kubeDoc) at(source string) string {
	if d.line > 0 {
		return fmt.Sprintf("%s:%d", source, d.line)
	}
	return source
}

// eachItem reads each of a typed list's items, as the document's item i,
// in order, and stops at the first error.
func eachItem[T any](d kubeDoc, items []T, read func(kubeDoc, *T) error) error {
	for i := range items {
		if err := read(d.item(i), &items[i]); err != nil {
			return err
		}
	}
	return nil
}

// item is the document's i-th list item, named "items[i]" after the
// document's own path; it keeps the document's bytes and line.
func (d kubeDoc) item(i int) kubeDoc {
	d.path = strings.TrimSpace(d.path + fmt.Sprintf(" items[%d]", i))
	return d
}

// IsKubeInput reports whether b holds Kubernetes objects (a document with
// apiVersion and kind), as opposed to a scenario or a CSV trace.
func IsKubeInput(b []byte) bool {
	docs, err := splitDocuments(b)
	if err != nil || len(docs) == 0 {
		return false
	}
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(docs[0].raw, &tm); err != nil {
		return false
	}
	return tm.Kind != "" && tm.APIVersion != ""
}

// splitDocuments splits YAML documents (or one JSON document), keeping each
// one's first line.
func splitDocuments(b []byte) ([]kubeDoc, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return []kubeDoc{{raw: t}}, nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	var out []kubeDoc
	var cur []string
	first := 0 // line of cur's first line that is not blank or a comment
	flush := func() {
		doc := strings.Join(cur, "")
		if first > 0 && !onlyComments([]byte(doc)) {
			out = append(out, kubeDoc{raw: []byte(doc), line: first})
		}
		cur, first = nil, 0
	}
	for i, l := range lines {
		if t := strings.TrimRight(l, "\r\n"); t == "---" || strings.HasPrefix(t, "--- ") {
			flush()
			continue
		}
		cur = append(cur, l)
		if t := strings.TrimSpace(l); first == 0 && t != "" && !strings.HasPrefix(t, "#") {
			first = i + 1
		}
	}
	flush()
	return out, nil
}

func onlyComments(doc []byte) bool {
	for _, l := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(l); t != "" && t != "---" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// KubeObjects are the pods an input of Kubernetes objects stands for.
type KubeObjects struct {
	Pods []PodSpec
	// Excluded pods are not replayed (completed, DaemonSet, CPU-only under
	// --cpu-pods=exclude).
	Excluded []ExcludedPod
	// Ignored names objects that are not workloads (Services, ConfigMaps,
	// ...).
	Ignored []string
	// Notes say what of the input the simulator does not model.
	Notes []string
	// Nodes are the input's Nodes (kubectl get nodes, or a v1 List of
	// nodes and pods); Bound its pods that a node runs (nodes.go). Only
	// simulator preview uses them.
	Nodes []ClusterNode
	Bound []BoundPod
}

// ParseKube reads Kubernetes objects: Pods (alone, in a PodList or a v1
// List), Deployments, StatefulSets, Jobs and JobSets. Pods keep their
// namespace, labels, annotations, requests (as the API server computes a
// pod's: limits default requests, init containers and overhead count),
// limits, node selector, node affinity and tolerations; their owner gives
// the eviction model's class (Job, JobSet, bare pods: batch;
// ReplicaSet/Deployment, StatefulSet: service; a karpenter-gpu.io/
// workload-class annotation wins) and the pod group reports sum costs by.
// Workload manifests expand to their replicas (Jobs: parallelism). Every
// pod arrives at 0 and never leaves (a snapshot). Errors name the file
// (and line of a YAML document), the object and the field.
func ParseKube(b []byte, source string, opts TraceOptions) (*KubeObjects, error) {
	k, err := readKube(b, source, opts)
	if err != nil {
		return nil, err
	}
	if len(k.Pods) == 0 && len(k.Excluded) == 0 {
		if len(k.Nodes) > 0 {
			return nil, fmt.Errorf("%s: no pod and no workload (Deployment, StatefulSet, Job, JobSet) in the input, only %d Nodes: nodes are an input of `simulator preview --nodes`", source, len(k.Nodes))
		}
		return nil, fmt.Errorf("%s: no pod and no workload (Deployment, StatefulSet, Job, JobSet) in the input; ignored: %s", source, strings.Join(k.Ignored, ", "))
	}
	return k, nil
}

// readKube reads Kubernetes objects as ParseKube does, without requiring
// a pod or a workload among them.
func readKube(b []byte, source string, opts TraceOptions) (*KubeObjects, error) {
	docs, err := splitDocuments(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no Kubernetes object", source)
	}
	k := &kubeReader{source: source, opts: opts, out: &KubeObjects{}, seen: map[string]string{}, nodeSeen: map[string]string{}}
	if k.opts.CPUPods == "" {
		k.opts.CPUPods = CPUPodsExclude
	}
	for i, d := range docs {
		d.path = fmt.Sprintf("document %d", i+1)
		if len(docs) == 1 {
			d.path = ""
		}
		if err := k.object(d); err != nil {
			return nil, err
		}
	}
	if k.interPod > 0 {
		k.out.Notes = append(k.out.Notes, fmt.Sprintf("%d pods have inter-pod affinity or topology spread constraints: not simulated (node affinity, selectors and tolerations are)", k.interPod))
	}
	return k.out, nil
}

type kubeReader struct {
	source   string
	opts     TraceOptions
	out      *KubeObjects
	seen     map[string]string // namespace/name -> where defined
	nodeSeen map[string]string // node name -> where defined
	interPod int
}

func (k *kubeReader) errorf(d kubeDoc, object, field, format string, args ...any) error {
	where := d.at(k.source)
	if d.path != "" && d.line == 0 {
		where += " " + d.path
	}
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		return fmt.Errorf("%s: %s: field %q: %s", where, object, field, msg)
	}
	return fmt.Errorf("%s: %s: %s", where, object, msg)
}

func objectName(kind, namespace, name string) string {
	if namespace == "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s %s/%s", kind, namespace, name)
}

var jsonIndex = regexp.MustCompile(`\.(\d+)\b`)

// decodeError turns a decoder error into "field: problem".
func (k *kubeReader) decodeError(d kubeDoc, object string, err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "strict decoding error: ") {
		// e.g. `strict decoding error: unknown field "spec.containers[0].resource"`
		msg = strings.TrimPrefix(msg, "strict decoding error: ")
		if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
			field := strings.Trim(strings.Split(f, ",")[0], `"`)
			return k.errorf(d, object, field, "unknown field")
		}
	}
	var fieldErr *json.UnmarshalTypeError
	if errors.As(err, &fieldErr) {
		// encoding/json names list items as ".0.": written as "[0]" like the
		// other errors' fields.
		field := jsonIndex.ReplaceAllString(fieldErr.Field, "[$1]")
		return k.errorf(d, object, field, "expected %s, got %s", fieldErr.Type, fieldErr.Value)
	}
	// json: cannot unmarshal ... into Go struct field Pod.spec.containers.resources.requests of type ...
	if i := strings.Index(msg, "Go struct field "); i >= 0 {
		rest := msg[i+len("Go struct field "):]
		field, _, _ := strings.Cut(rest, " ")
		if _, f, ok := strings.Cut(field, "."); ok {
			field = f
		}
		return k.errorf(d, object, field, "%s", msg)
	}
	if strings.Contains(msg, "quantities must match") {
		return k.errorf(d, object, lo.Ternary(strings.HasPrefix(object, "Node "), "status.capacity or status.allocatable", "resources"), "%s", msg)
	}
	return k.errorf(d, object, "", "%s", msg)
}

func (k *kubeReader) object(d kubeDoc) error {
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name, Namespace string
		} `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(d.raw, &head); err != nil {
		return k.errorf(d, "object", "", "%v", err)
	}
	object := objectName(lo.CoalesceOrEmpty(head.Kind, "object"), head.Metadata.Namespace, head.Metadata.Name)
	if head.Kind == "" {
		return k.errorf(d, object, "kind", "required")
	}
	if head.APIVersion == "" {
		return k.errorf(d, object, "apiVersion", "required")
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		return k.errorf(d, object, "apiVersion", "%v", err)
	}
	if gv.Group == JobSetGroup && head.Kind == "JobSet" {
		if gv != jobsetv1alpha2.GroupVersion {
			return k.errorf(d, object, "apiVersion", "%s: JobSet is served as %s", head.APIVersion, jobsetv1alpha2.GroupVersion)
		}
		return k.jobSet(d, object)
	}
	if !kubeScheme.Recognizes(gv.WithKind(head.Kind)) {
		k.out.Ignored = append(k.out.Ignored, fmt.Sprintf("%s %s", head.APIVersion, object))
		return nil
	}
	obj, _, err := strictDecoder.Decode(d.raw, nil, nil)
	if err != nil {
		return k.decodeError(d, object, err)
	}
	switch o := obj.(type) {
	case *corev1.List:
		for i, item := range o.Items {
			// A YAML list's items have no line of their own here: they keep
			// the list's.
			sub := d.item(i)
			sub.raw = item.Raw
			if err := k.object(sub); err != nil {
				return err
			}
		}
	case *corev1.PodList:
		return eachItem(d, o.Items, k.pod)
	case *corev1.Pod:
		return k.pod(d, o)
	case *corev1.NodeList:
		return eachItem(d, o.Items, k.node)
	case *corev1.Node:
		return k.node(d, o)
	case *appsv1.Deployment:
		return k.replicas(d, "Deployment", &o.ObjectMeta, o.Spec.Replicas, &o.Spec.Template, evictioncost.Service)
	case *appsv1.StatefulSet:
		return k.replicas(d, "StatefulSet", &o.ObjectMeta, o.Spec.Replicas, &o.Spec.Template, evictioncost.Service)
	case *batchv1.Job:
		return k.replicas(d, "Job", &o.ObjectMeta, jobPods(&o.Spec), &o.Spec.Template, evictioncost.Batch)
	default:
		k.out.Ignored = append(k.out.Ignored, fmt.Sprintf("%s %s", head.APIVersion, object))
	}
	return nil
}

// jobPods is how many pods of a Job run at once: parallelism (default 1),
// at most its completions.
func jobPods(s *batchv1.JobSpec) *int32 {
	n := int32(1)
	if s.Parallelism != nil {
		n = *s.Parallelism
	}
	if s.Completions != nil && *s.Completions < n {
		n = *s.Completions
	}
	return &n
}

// jobSet expands a JobSet as its controller does: each replicated job
// makes replicas Jobs (<jobset>-<replicatedJob>-<index>), each Job runs
// its parallelism pods (at most its completions), and the pods carry the
// labels and annotations the controller puts on them (jobset name,
// replicated job, job index, replicas, group; exclusive placement). Omitted replicas and groupName take the CRD
// schema's defaults (1, "default"), as the API server applies them; an
// explicit `replicas: 0` makes no Job.
func (k *kubeReader) jobSet(d kubeDoc, object string) error {
	js := &jobsetv1alpha2.JobSet{}
	if err := sigsyaml.Unmarshal(d.raw, js); err != nil {
		return k.decodeError(d, object, err)
	}
	if js.Name == "" {
		return k.errorf(d, object, "metadata.name", "required")
	}
	if len(js.Spec.ReplicatedJobs) == 0 {
		return k.errorf(d, object, "spec.replicatedJobs", "required")
	}
	// Which fields the document states (the typed Replicas is not a
	// pointer: 0 and absent differ only here), and each Job template as
	// written, checked strictly on its own first so that an error in one
	// names its replicated job.
	var raw struct {
		Spec struct {
			ReplicatedJobs []struct {
				Replicas  *int32          `json:"replicas"`
				GroupName *string         `json:"groupName"`
				Template  json.RawMessage `json:"template"`
			} `json:"replicatedJobs"`
		} `json:"spec"`
	}
	if err := sigsyaml.Unmarshal(d.raw, &raw); err != nil {
		return k.decodeError(d, object, err)
	}
	for i := range js.Spec.ReplicatedJobs {
		rj, stated := &js.Spec.ReplicatedJobs[i], raw.Spec.ReplicatedJobs[i]
		field := fmt.Sprintf("spec.replicatedJobs[%d]", i)
		if rj.Name == "" {
			return k.errorf(d, object, field+".name", "required")
		}
		if err := strictJSON(stated.Template, &batchv1.JobTemplateSpec{}); err != nil {
			return k.errorf(d, object, field+".template", "%v", err)
		}
		if stated.Replicas == nil {
			rj.Replicas = 1
		}
		if stated.GroupName == nil {
			rj.GroupName = "default"
		}
		if rj.Replicas < 0 {
			return k.errorf(d, object, field+".replicas", "negative (%d)", rj.Replicas)
		}
	}
	// The rest of the JobSet strictly, as the API server checks it against
	// the CRD's schema (a misspelt field would otherwise be dropped).
	if _, _, err := strictDecoder.Decode(d.raw, nil, &jobsetv1alpha2.JobSet{}); err != nil {
		err = k.decodeError(d, object, err)
		if strings.HasSuffix(err.Error(), "unknown field") {
			return fmt.Errorf("%w (of %s)", err, jobSetAPI)
		}
		return err
	}
	groupReplicas := map[string]int32{}
	global := int32(0)
	for _, rj := range js.Spec.ReplicatedJobs {
		groupReplicas[rj.GroupName] += rj.Replicas
		global += rj.Replicas
	}
	_, exclusive := js.Annotations[jobsetv1alpha2.ExclusiveKey]
	for i, rj := range js.Spec.ReplicatedJobs {
		field := fmt.Sprintf("spec.replicatedJobs[%d]", i)
		perJob := *jobPods(&rj.Template.Spec)
		_, rjExclusive := rj.Template.Annotations[jobsetv1alpha2.ExclusiveKey]
		for r := int32(0); r < rj.Replicas; r++ {
			jobName := fmt.Sprintf("%s-%s-%d", js.Name, rj.Name, r)
			tmpl := rj.Template.Spec.Template.DeepCopy()
			// The controller puts these on the pods as labels and as
			// annotations, and the exclusive placement annotation too.
			keys := map[string]string{
				jobsetv1alpha2.JobSetNameKey:         js.Name,
				jobsetv1alpha2.ReplicatedJobNameKey:  rj.Name,
				jobsetv1alpha2.ReplicatedJobReplicas: fmt.Sprint(rj.Replicas),
				jobsetv1alpha2.GlobalReplicasKey:     fmt.Sprint(global),
				jobsetv1alpha2.JobIndexKey:           fmt.Sprint(r),
				jobsetv1alpha2.GroupNameKey:          rj.GroupName,
				jobsetv1alpha2.GroupReplicasKey:      fmt.Sprint(groupReplicas[rj.GroupName]),
			}
			tmpl.Labels = lo.Assign(tmpl.Labels, keys)
			tmpl.Annotations = lo.Assign(tmpl.Annotations, keys)
			for _, from := range []map[string]string{js.Annotations, rj.Template.Annotations} {
				if topology, ok := from[jobsetv1alpha2.ExclusiveKey]; ok {
					tmpl.Annotations[jobsetv1alpha2.ExclusiveKey] = topology
				}
			}
			meta := metav1.ObjectMeta{Name: jobName, Namespace: js.Namespace}
			before := len(k.out.Pods)
			if err := k.expand(d, object, field+".template.spec.template", "JobSet/"+js.Name, &meta, perJob, tmpl, evictioncost.Batch); err != nil {
				return err
			}
			if (exclusive || rjExclusive) && !interPod(&tmpl.Spec) {
				// The JobSet webhook gives these pods pod affinity and
				// anti-affinity per topology domain: not simulated.
				k.interPod += len(k.out.Pods) - before
			}
		}
	}
	return nil
}

func strictJSON(b []byte, out any) error {
	if len(b) == 0 {
		return fmt.Errorf("required")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// replicas expands a Deployment, StatefulSet or Job.
func (k *kubeReader) replicas(d kubeDoc, kind string, meta *metav1.ObjectMeta, n *int32, tmpl *corev1.PodTemplateSpec, class evictioncost.Class) error {
	object := objectName(kind, meta.Namespace, meta.Name)
	if meta.Name == "" {
		return k.errorf(d, object, "metadata.name", "required")
	}
	count := int32(1)
	if n != nil {
		count = *n
	}
	if count < 0 {
		return k.errorf(d, object, "spec.replicas", "negative (%d)", count)
	}
	return k.expand(d, object, "spec.template", kind+"/"+meta.Name, meta, count, tmpl, class)
}

// expand makes count pods of a template, named <name>-<i> as a
// StatefulSet names them (the others use random suffixes).
func (k *kubeReader) expand(d kubeDoc, object, field, group string, meta *metav1.ObjectMeta, count int32, tmpl *corev1.PodTemplateSpec, class evictioncost.Class) error {
	if len(tmpl.Spec.Containers) == 0 {
		return k.errorf(d, object, field+".spec.containers", "required")
	}
	if total := len(k.out.Pods) + int(count); total > MaxKubePods {
		return k.errorf(d, object, "", "%d pods: more than the simulator expands from one input (%d)", count, MaxKubePods)
	}
	for i := int32(0); i < count; i++ {
		pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
		pod.Name = fmt.Sprintf("%s-%d", meta.Name, i)
		pod.Namespace = meta.Namespace
		if err := k.add(d, objectName("Pod", pod.Namespace, pod.Name)+" of "+object, field, pod, group, class); err != nil {
			return err
		}
	}
	return nil
}

// pod reads one pod of a pod list: its owner gives its group and class;
// completed and DaemonSet pods are excluded.
func (k *kubeReader) pod(d kubeDoc, pod *corev1.Pod) error {
	object := objectName("Pod", pod.Namespace, pod.Name)
	if pod.Name == "" {
		return k.errorf(d, object, "metadata.name", "required")
	}
	group, ownerKind := podGroup(pod)
	origin := k.origin(d)
	if terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed; pod.Spec.NodeName != "" && !terminal {
		bound := pod.DeepCopy()
		defaultRequestsFromLimits(bound)
		k.out.Bound = append(k.out.Bound, BoundPod{Key: podKey(pod.Namespace, pod.Name), Node: pod.Spec.NodeName, Pod: bound})
	}
	switch {
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		k.exclude(pod, origin, fmt.Sprintf("completed (phase %s)", pod.Status.Phase))
		return nil
	case ownerKind == "DaemonSet":
		k.exclude(pod, origin, "DaemonSet pod (per-node overhead, not a workload to provision for)")
		return nil
	}
	class := evictioncost.Batch
	if serviceOwners[ownerKind] {
		class = evictioncost.Service
	}
	return k.add(d, object, "", pod, group, class)
}

// podGroup names the workload a pod belongs to (Deployment/x for pods of
// a Deployment's ReplicaSet, JobSet/x for a JobSet's Jobs, Pod/x for bare
// pods) and its controller's kind.
func podGroup(pod *corev1.Pod) (group, ownerKind string) {
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return "Pod/" + pod.Name, ""
	}
	switch owner.Kind {
	case "ReplicaSet":
		if h := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" && strings.HasSuffix(owner.Name, "-"+h) {
			return "Deployment/" + strings.TrimSuffix(owner.Name, "-"+h), owner.Kind
		}
	case "Job":
		if js := pod.Labels[jobsetv1alpha2.JobSetNameKey]; js != "" {
			return "JobSet/" + js, owner.Kind
		}
	}
	return owner.Kind + "/" + owner.Name, owner.Kind
}

func (k *kubeReader) origin(d kubeDoc) string {
	o := d.at(k.source)
	if d.path != "" {
		o += " " + d.path
	}
	return o
}

func (k *kubeReader) exclude(pod *corev1.Pod, origin, reason string) {
	k.out.Excluded = append(k.out.Excluded, ExcludedPod{Name: podKey(pod.Namespace, pod.Name), Origin: origin, Reason: reason, deletion: Forever})
}

func podKey(namespace, name string) string {
	return lo.CoalesceOrEmpty(namespace, DefaultNamespace) + "/" + name
}

// add turns a pod into a PodSpec.
func (k *kubeReader) add(d kubeDoc, object, field string, pod *corev1.Pod, group string, class evictioncost.Class) error {
	sub := func(f string) string { return strings.TrimPrefix(field+"."+f, ".") }
	if errs := validationErrors(pod.Name); errs != "" {
		return k.errorf(d, object, sub("metadata.name"), "%q is not a valid pod name: %s", pod.Name, errs)
	}
	key := podKey(pod.Namespace, pod.Name)
	if prev, dup := k.seen[key]; dup {
		return k.errorf(d, object, sub("metadata.name"), "pod %s already defined (%s)", key, prev)
	}
	k.seen[key] = k.origin(d)
	// Limits default requests (the API server's defaulting), then the
	// pod's effective requests as kube-scheduler computes them.
	defaultRequestsFromLimits(pod)
	for ci, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for name, q := range c.Resources.Requests {
				if q.Sign() < 0 {
					kind := lo.Ternary(ci == 0, "initContainers", "containers")
					return k.errorf(d, object, sub(fmt.Sprintf("spec.%s[%d].resources.requests.%s", kind, i, name)), "negative quantity %s", q.String())
				}
			}
		}
	}
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	for name, q := range reqs {
		if q.IsZero() {
			delete(reqs, name)
		}
	}
	if q, ok := reqs[v1alpha1.ResourceNVIDIAGPU]; ok && q.MilliValue()%1000 != 0 {
		return k.errorf(d, object, sub("spec.containers.resources.requests."+v1alpha1.ResourceNVIDIAGPU), "must be a whole number, got %s", q.String())
	}
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	spec := PodSpec{
		Name:         pod.Name,
		Namespace:    lo.CoalesceOrEmpty(pod.Namespace, DefaultNamespace),
		Origin:       k.origin(d),
		Arrival:      0,
		Deletion:     Forever,
		Requests:     reqs,
		Limits:       limits,
		NodeSelector: pod.Spec.NodeSelector,
		Tolerations:  pod.Spec.Tolerations,
		Labels:       pod.Labels,
		Group:        group,
		Annotations:  lo.Assign(pod.Annotations),
	}
	if a := pod.Spec.Affinity; a != nil {
		spec.NodeAffinity = a.NodeAffinity
	}
	if interPod(&pod.Spec) {
		k.interPod++
	}
	if _, ok := spec.Annotations[evictioncost.AnnotationWorkloadClass]; !ok {
		spec.Annotations[evictioncost.AnnotationWorkloadClass] = string(class)
	}
	if _, err := (evictioncost.Model{}).ProfileOf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Annotations: spec.Annotations}}); err != nil {
		return k.errorf(d, object, sub("metadata.annotations"), "%v", err)
	}
	if spec.GPUs() == 0 {
		switch k.opts.CPUPods {
		case CPUPodsExclude:
			k.out.Excluded = append(k.out.Excluded, ExcludedPod{Name: key, Origin: spec.Origin, Reason: "requests no GPU (--cpu-pods=exclude)", deletion: Forever})
			return nil
		case CPUPodsGPUNodes:
			spec.Tolerations = append(append([]corev1.Toleration{}, spec.Tolerations...),
				corev1.Toleration{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	k.out.Pods = append(k.out.Pods, spec)
	return nil
}

// interPod reports whether a pod has inter-pod affinity, anti-affinity or
// topology spread constraints (which the simulation does not model).
func interPod(s *corev1.PodSpec) bool {
	a := s.Affinity
	return a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil) || len(s.TopologySpreadConstraints) > 0
}

// defaultRequestsFromLimits sets a container's missing requests to its
// limits, as the API server defaults them.
func defaultRequestsFromLimits(pod *corev1.Pod) {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for name, q := range c.Resources.Limits {
				if _, ok := c.Resources.Requests[name]; !ok {
					if c.Resources.Requests == nil {
						c.Resources.Requests = corev1.ResourceList{}
					}
					c.Resources.Requests[name] = q.DeepCopy()
				}
			}
		}
	}
}

// FromKube builds a workload from Kubernetes objects (ParseKube) with the
// default GPUNodeClass and NodePool.
func FromKube(b []byte, source string, opts TraceOptions) (*Workload, error) {
	objs, err := ParseKube(b, source, opts)
	if err != nil {
		return nil, err
	}
	cpu := opts.CPUPods
	if cpu == "" {
		cpu = CPUPodsExclude
	}
	w := &Workload{Source: source, NodeClass: DefaultNodeClass(), NodePools: []*karpv1.NodePool{DefaultNodePool()},
		CPUPods: cpu, Pods: objs.Pods, Excluded: objs.Excluded, Notes: objs.Notes}
	if len(objs.Ignored) > 0 {
		sort.Strings(objs.Ignored)
		what := lo.Ternary(len(objs.Ignored) == 1, "object is not a workload and was", "objects are not workloads and were")
		w.Notes = append(w.Notes, fmt.Sprintf("%d %s ignored: %s", len(objs.Ignored), what, strings.Join(lo.Slice(objs.Ignored, 0, 10), ", ")))
	}
	if len(objs.Nodes) > 0 {
		w.Notes = append(w.Notes, fmt.Sprintf("%d %s: the simulation builds each policy's own fleet (simulator preview places pods on them)", len(objs.Nodes), NodesNotReplayed))
	}
	if len(w.Pods) == 0 {
		return nil, fmt.Errorf("%s: no pod to replay (%d excluded, e.g. %s: %s)", source, len(w.Excluded), w.Excluded[0].Name, w.Excluded[0].Reason)
	}
	w.SortPods()
	return w, nil
}
