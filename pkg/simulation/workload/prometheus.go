package workload

// Pod lifetimes from kube-state-metrics, through the Prometheus HTTP API:
// range queries of kube_pod_created, kube_pod_completion_time,
// kube_pod_deletion_timestamp, kube_pod_container_resource_requests,
// kube_pod_owner and kube_pod_labels, live (QueryPrometheus) or as the
// saved JSON of one query_range response holding them all (e.g.
// `curl -G URL/api/v1/query_range --data-urlencode
// 'query={__name__=~"kube_pod_(created|completion_time|deletion_timestamp|container_resource_requests|owner|labels)"}'
// -d start=... -d end=... -d step=60`).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// PrometheusMetrics are the kube-state-metrics series read.
var PrometheusMetrics = []string{"kube_pod_created", "kube_pod_completion_time", "kube_pod_deletion_timestamp",
	"kube_pod_container_resource_requests", "kube_pod_owner", "kube_pod_labels"}

// PrometheusQuery selects every series PrometheusMetrics names in one query.
var PrometheusQuery = `{__name__=~"` + strings.Join(PrometheusMetrics, "|") + `"}`

// promResponse is the Prometheus HTTP API's envelope.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      *struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// IsPrometheusResponse reports whether b is a Prometheus API response.
func IsPrometheusResponse(b []byte) bool {
	var head map[string]json.RawMessage
	if err := json.Unmarshal(b, &head); err != nil {
		return false
	}
	_, status := head["status"]
	_, data := head["data"]
	return status && (data || head["error"] != nil)
}

// FromPrometheusFile reads a saved query_range response. The range is the
// span of its samples.
func FromPrometheusFile(b []byte, source string, opts TraceOptions) (*Workload, error) {
	var r promResponse
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: not a Prometheus API response: %v", source, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: field \"status\": %q (%s: %s)", source, r.Status, r.ErrorType, r.Error)
	}
	if r.Data == nil {
		return nil, fmt.Errorf("%s: field \"data\": required", source)
	}
	if r.Data.ResultType != model.ValMatrix.String() {
		return nil, fmt.Errorf("%s: field \"data.resultType\": %q, want matrix (a query_range response)", source, r.Data.ResultType)
	}
	var m model.Matrix
	if err := json.Unmarshal(r.Data.Result, &m); err != nil {
		return nil, fmt.Errorf("%s: field \"data.result\": %v", source, err)
	}
	var start, end model.Time
	first := true
	for _, s := range m {
		for _, v := range s.Values {
			if first || v.Timestamp < start {
				start = v.Timestamp
			}
			if first || v.Timestamp > end {
				end = v.Timestamp
			}
			first = false
		}
	}
	if first {
		return nil, fmt.Errorf("%s: field \"data.result\": no samples", source)
	}
	return FromPrometheus(m, source, start.Time(), end.Time(), opts)
}

// QueryPrometheus runs the range queries of PrometheusMetrics against a
// Prometheus server (url: its base, e.g. http://prometheus:9090) and
// returns the series.
func QueryPrometheus(ctx context.Context, url string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	if !end.After(start) || step <= 0 {
		return nil, fmt.Errorf("prometheus range [%s, %s] step %s: want end after start and a positive step", start, end, step)
	}
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", url, err)
	}
	v1 := promv1.NewAPI(c)
	var out model.Matrix
	for _, metric := range PrometheusMetrics {
		v, _, err := v1.QueryRange(ctx, metric, promv1.Range{Start: start, End: end, Step: step})
		if err != nil {
			return nil, fmt.Errorf("prometheus %s: query_range %s: %w", url, metric, err)
		}
		m, ok := v.(model.Matrix)
		if !ok {
			return nil, fmt.Errorf("prometheus %s: query_range %s returned %s, want a matrix", url, metric, v.Type())
		}
		out = append(out, m...)
	}
	return out, nil
}

type promPod struct {
	namespace, name             string
	created, completed, deleted float64 // unix seconds; NaN when absent
	lastSeen                    model.Time
	requests                    map[string]map[corev1.ResourceName]float64 // container -> resource -> max value
	ownerKind, ownerName        string
	labels                      map[string]string
	series                      string // a series of it, for errors
	specName                    string // name in the workload (name.N for later incarnations)
}

// promResource maps kube-state-metrics' sanitised resource label
// (nvidia_com_gpu) back to the Kubernetes resource name.
func promResource(r string) (corev1.ResourceName, bool) {
	switch r {
	case "cpu", "memory", "pods":
		return corev1.ResourceName(r), true
	case "ephemeral_storage", "ephemeral-storage":
		return corev1.ResourceEphemeralStorage, true
	}
	if strings.Contains(r, "/") {
		return corev1.ResourceName(r), true
	}
	for _, tld := range []string{"_com_", "_io_", "_ai_", "_org_"} {
		if i := strings.Index(r, tld); i > 0 {
			domain := strings.ReplaceAll(r[:i], "_", ".") + "." + strings.Trim(tld, "_")
			return corev1.ResourceName(domain + "/" + r[i+len(tld):]), true
		}
	}
	return "", false
}

// FromPrometheus builds a workload from kube-state-metrics series over
// [start, end]: a pod arrives at kube_pod_created (pods created before
// start arrive at 0) and leaves at kube_pod_completion_time, else
// kube_pod_deletion_timestamp, else when its series stop before end (never,
// when they reach it); requests are the largest value of each container's
// kube_pod_container_resource_requests, summed over containers; the owner
// (kube_pod_owner) gives the class and pod group, kube_pod_labels the labels
// (sanitised names: label_team → team). Times are relative to start.
func FromPrometheus(m model.Matrix, source string, start, end time.Time, opts TraceOptions) (*Workload, error) {
	if opts.CPUPods == "" {
		opts.CPUPods = CPUPodsExclude
	}
	pods := map[string]*promPod{}
	get := func(s *model.SampleStream) (*promPod, error) {
		ns, name := string(s.Metric["namespace"]), string(s.Metric["pod"])
		if name == "" {
			return nil, fmt.Errorf("%s: series %s: label \"pod\": required", source, s.Metric)
		}
		// One pod object per UID: a pod recreated under the same name (a
		// StatefulSet's, a Job's) is another incarnation.
		key := podKey(ns, name) + "|" + string(s.Metric["uid"])
		p := pods[key]
		if p == nil {
			p = &promPod{namespace: ns, name: name, created: math.NaN(), completed: math.NaN(), deleted: math.NaN(),
				requests: map[string]map[corev1.ResourceName]float64{}, labels: map[string]string{}, series: s.Metric.String()}
			pods[key] = p
		}
		if n := len(s.Values); n > 0 && s.Values[n-1].Timestamp > p.lastSeen {
			p.lastSeen = s.Values[n-1].Timestamp
		}
		return p, nil
	}
	last := func(s *model.SampleStream) float64 {
		if len(s.Values) == 0 {
			return math.NaN()
		}
		return float64(s.Values[len(s.Values)-1].Value)
	}
	var step model.Time // smallest sample spacing seen
	for _, s := range m {
		name := string(s.Metric[model.MetricNameLabel])
		p, err := get(s)
		if err != nil {
			return nil, err
		}
		for i := 1; i < len(s.Values); i++ {
			if d := s.Values[i].Timestamp - s.Values[i-1].Timestamp; d > 0 && (step == 0 || d < step) {
				step = d
			}
		}
		switch name {
		case "kube_pod_created":
			p.created = last(s)
		case "kube_pod_completion_time":
			p.completed = last(s)
		case "kube_pod_deletion_timestamp":
			p.deleted = last(s)
		case "kube_pod_container_resource_requests":
			r, ok := promResource(string(s.Metric["resource"]))
			if !ok {
				return nil, fmt.Errorf("%s: series %s: label \"resource\": unknown resource %q", source, s.Metric, s.Metric["resource"])
			}
			c := string(s.Metric["container"])
			if p.requests[c] == nil {
				p.requests[c] = map[corev1.ResourceName]float64{}
			}
			for _, v := range s.Values {
				if float64(v.Value) < 0 || math.IsNaN(float64(v.Value)) {
					return nil, fmt.Errorf("%s: series %s: value %v at %s: not a request", source, s.Metric, v.Value, v.Timestamp.Time().UTC().Format(time.RFC3339))
				}
				p.requests[c][r] = math.Max(p.requests[c][r], float64(v.Value))
			}
		case "kube_pod_owner":
			if s.Metric["owner_is_controller"] == "false" && p.ownerKind != "" {
				continue
			}
			if k := string(s.Metric["owner_kind"]); k != "" && k != "<none>" {
				p.ownerKind, p.ownerName = k, string(s.Metric["owner_name"])
			}
		case "kube_pod_labels":
			for l, v := range s.Metric {
				if k, ok := strings.CutPrefix(string(l), "label_"); ok {
					p.labels[k] = string(v)
				}
			}
		case "":
			return nil, fmt.Errorf("%s: series %s: no metric name (__name__)", source, s.Metric)
		default:
			return nil, fmt.Errorf("%s: series %s: metric %q is not one of %s", source, s.Metric, name, strings.Join(PrometheusMetrics, ", "))
		}
	}
	w := &Workload{Source: fmt.Sprintf("%s (kube-state-metrics, %s to %s)", source, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339)),
		NodeClass: DefaultNodeClass(), NodePools: []*karpv1.NodePool{DefaultNodePool()}, CPUPods: opts.CPUPods,
		Span: end.Sub(start), KSMLabels: true,
		Notes: []string{"kube-state-metrics carries no node selectors, affinity or tolerations: pods are placed by their requests only"}}
	keys := make([]string, 0, len(pods))
	for k := range pods {
		keys = append(keys, k)
	}
	// By pod, incarnations in creation order: the first keeps the pod's
	// name, the next are name.2, name.3 (valid pod names, and not ones a
	// controller generates).
	sort.Slice(keys, func(i, j int) bool {
		a, b := pods[keys[i]], pods[keys[j]]
		if ka, kb := podKey(a.namespace, a.name), podKey(b.namespace, b.name); ka != kb {
			return ka < kb
		}
		if a.created != b.created && !math.IsNaN(a.created) && !math.IsNaN(b.created) {
			return a.created < b.created
		}
		return keys[i] < keys[j]
	})
	incarnation := map[string]int{}
	for _, k := range keys {
		p := pods[k]
		pk := podKey(p.namespace, p.name)
		incarnation[pk]++
		p.specName = p.name
		if n := incarnation[pk]; n > 1 {
			p.specName = fmt.Sprintf("%s.%d", p.name, n)
		}
	}
	t0 := float64(start.UnixNano()) / 1e9
	horizon := end.Sub(start)
	for _, k := range keys {
		p := pods[k]
		key := podKey(p.namespace, p.specName)
		if math.IsNaN(p.created) {
			return nil, fmt.Errorf("%s: pod %s (series %s): no kube_pod_created series: its arrival is unknown", source, key, p.series)
		}
		at := func(unix float64) time.Duration {
			return time.Duration((unix - t0) * float64(time.Second)).Round(time.Second)
		}
		arrival := max(0, at(p.created))
		deletion := Forever
		switch {
		case !math.IsNaN(p.completed):
			deletion = at(p.completed)
		case !math.IsNaN(p.deleted):
			deletion = at(p.deleted)
		case step > 0 && p.lastSeen.Time().Before(end.Add(-time.Duration(step)*time.Millisecond)):
			deletion = p.lastSeen.Time().Sub(start)
		}
		if arrival > horizon || (deletion != Forever && deletion <= arrival) {
			continue // created after the range, or gone before it
		}
		reqs := corev1.ResourceList{}
		for _, c := range slices.Sorted(maps.Keys(p.requests)) {
			for r, v := range p.requests[c] {
				q := promQuantity(r, v)
				cur := reqs[r]
				cur.Add(q)
				reqs[r] = cur
			}
		}
		group, ownerKind := "Pod/"+p.name, p.ownerKind
		if ownerKind != "" {
			group = ownerKind + "/" + p.ownerName
			if h := p.labels["pod_template_hash"]; ownerKind == "ReplicaSet" && h != "" && strings.HasSuffix(p.ownerName, "-"+h) {
				group = "Deployment/" + strings.TrimSuffix(p.ownerName, "-"+h)
			}
		}
		origin := fmt.Sprintf("%s: series %s", source, p.series)
		if ownerKind == "DaemonSet" {
			w.Excluded = append(w.Excluded, ExcludedPod{Name: key, Origin: origin, Reason: "DaemonSet pod (per-node overhead, not a workload to provision for)", arrival: arrival, deletion: deletion})
			continue
		}
		class := evictioncost.Batch
		if serviceOwners[ownerKind] {
			class = evictioncost.Service
		}
		spec := PodSpec{Name: p.specName, Namespace: p.namespace, Group: group, Origin: origin, Arrival: arrival, Deletion: deletion,
			Requests: reqs, Labels: p.labels, Annotations: map[string]string{evictioncost.AnnotationWorkloadClass: string(class)}}
		if q, ok := reqs[v1alpha1.ResourceNVIDIAGPU]; ok && q.MilliValue()%1000 != 0 {
			return nil, fmt.Errorf("%s: pod %s: kube_pod_container_resource_requests{resource=\"nvidia_com_gpu\"}: %s GPUs, want a whole number", source, key, q.String())
		}
		if errs := validationErrors(p.specName); errs != "" {
			return nil, fmt.Errorf("%s: pod %s: label \"pod\": not a valid pod name: %s", source, key, errs)
		}
		if spec.GPUs() == 0 {
			switch opts.CPUPods {
			case CPUPodsExclude:
				w.Excluded = append(w.Excluded, ExcludedPod{Name: key, Origin: origin, Reason: "requests no GPU (--cpu-pods=exclude)", arrival: arrival, deletion: deletion})
				continue
			case CPUPodsGPUNodes:
				spec.Tolerations = []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			}
		}
		w.Pods = append(w.Pods, spec)
	}
	if len(w.Pods) == 0 {
		return nil, fmt.Errorf("%s: no pod to replay in [%s, %s] (%d pods seen, %d excluded)", source, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), len(pods), len(w.Excluded))
	}
	w.SortPods()
	return w, nil
}

func promQuantity(r corev1.ResourceName, v float64) resource.Quantity {
	switch r {
	case corev1.ResourceCPU:
		return *resource.NewMilliQuantity(int64(math.Round(v*1000)), resource.DecimalSI)
	case corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		return *resource.NewQuantity(int64(math.Round(v)), resource.BinarySI)
	}
	if v == math.Trunc(v) {
		return *resource.NewQuantity(int64(v), resource.DecimalSI)
	}
	return *resource.NewMilliQuantity(int64(math.Round(v*1000)), resource.DecimalSI)
}

// KSMLabelName is the name kube-state-metrics (v2) gives a Kubernetes label
// key in kube_pod_labels, without its "label_" prefix: every character
// other than an ASCII letter, digit or underscore becomes an underscore, an
// underscore goes between a lower-case letter or digit and the upper-case
// letter after it, and the result is lower-cased. So
// app.kubernetes.io/name → app_kubernetes_io_name, teamName → team_name,
// Team → team. Distinct keys can share a name (team-a and team_a, Team and
// team); kube-state-metrics then suffixes the names of one pod's colliding
// keys _conflict1, _conflict2, ... in the order of the sorted keys.
func KSMLabelName(key string) string {
	var b strings.Builder
	prevLowerOrDigit := false
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			prevLowerOrDigit = true
		case r >= 'A' && r <= 'Z':
			if prevLowerOrDigit {
				b.WriteByte('_')
			}
			b.WriteRune(r - 'A' + 'a')
			prevLowerOrDigit = false
		default: // '_' and every character a Prometheus label name cannot hold
			b.WriteByte('_')
			prevLowerOrDigit = false
		}
	}
	return b.String()
}

// MapKSMLabel gives every pod of a kube-state-metrics workload the
// Kubernetes label key (e.g. app.kubernetes.io/name, for --group-by) whose
// kube-state-metrics name it carries (label_app_kubernetes_io_name). A pod
// whose labels collided on that name (label_<name>_conflictN) gets no
// value: which of them was key is unknown. The returned notes say how many
// pods were mapped and which were ambiguous. Other workloads are left as
// they are.
func (w *Workload) MapKSMLabel(key string) []string {
	if !w.KSMLabels || key == "" {
		return nil
	}
	name := KSMLabelName(key)
	var mapped int
	var ambiguous []string
	for i := range w.Pods {
		p := &w.Pods[i]
		if _, conflict := p.Labels[name+"_conflict1"]; conflict {
			ambiguous = append(ambiguous, p.Key())
			continue
		}
		v, ok := p.Labels[name]
		if !ok {
			continue
		}
		if name != key {
			p.Labels = lo.Assign(p.Labels, map[string]string{key: v})
		}
		mapped++
	}
	var notes []string
	if name != key {
		notes = append(notes, fmt.Sprintf("kube-state-metrics names label %q label_%s: %d %s it", key, name, mapped, lo.Ternary(mapped == 1, "pod carries", "pods carry")))
	}
	if len(ambiguous) > 0 {
		notes = append(notes, fmt.Sprintf("%d %s several labels kube-state-metrics names label_%s (label_%s_conflict1, ...), so which one is %q is unknown: counted as <none> (%s)",
			len(ambiguous), lo.Ternary(len(ambiguous) == 1, "pod carries", "pods carry"), name, name, key, strings.Join(lo.Slice(ambiguous, 0, 3), ", ")))
	}
	return notes
}
