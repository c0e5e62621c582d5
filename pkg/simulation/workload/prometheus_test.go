package workload

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// examples/finops/ksm-range.json is a query_range response of the kube-state-
// metrics series over 2026-11-30 00:00–06:00 UTC, step 5 min (built by hand,
// in the API's exact shape): train-a created an hour before the range and
// completed at 02:00; web-abc12-xyz created at 00:30 and alive at the end;
// web-abc12-old deleted at 03:00; short (a bare pod, 2 GPUs) created at
// 01:00 whose series stop at 02:00 without a completion time; a DaemonSet
// pod and a CPU-only pod.
var ksmStart = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

func checkKSMWorkload(t *testing.T, w *Workload) {
	t.Helper()
	pods := podsByKey(w)
	want := map[string]struct {
		arrival, deletion time.Duration
		class, group      string
		gpus              int64
	}{
		"ml-research/train-a":     {0, 2 * time.Hour, "batch", "Job/train-a", 1},
		"inference/web-abc12-xyz": {30 * time.Minute, Forever, "service", "Deployment/web", 1},
		"inference/web-abc12-old": {0, 3 * time.Hour, "service", "Deployment/web", 1},
		"batch/short":             {time.Hour, 2 * time.Hour, "batch", "Pod/short", 2},
	}
	if len(pods) != len(want) {
		t.Fatalf("pods %v, want %d", w.Pods, len(want))
	}
	for k, e := range want {
		p, ok := pods[k]
		if !ok {
			t.Errorf("pod %s missing", k)
			continue
		}
		if p.Arrival != e.arrival || p.Deletion != e.deletion {
			t.Errorf("%s: [%s, %s), want [%s, %s)", k, p.Arrival, p.Deletion, e.arrival, e.deletion)
		}
		if c := p.Annotations[evictioncost.AnnotationWorkloadClass]; c != e.class || p.Group != e.group || p.GPUs() != e.gpus {
			t.Errorf("%s: class %q group %q GPUs %d, want %q %q %d", k, c, p.Group, p.GPUs(), e.class, e.group, e.gpus)
		}
	}
	// Two containers: 2 + 0.5 CPU, 8 + 1 GiB.
	checkRequests(t, pods["ml-research/train-a"], map[corev1.ResourceName]string{"cpu": "2500m", "memory": "9Gi", "nvidia.com/gpu": "1"})
	if pods["inference/web-abc12-xyz"].Labels["team"] != "serving" {
		t.Errorf("labels %v, want team=serving", pods["inference/web-abc12-xyz"].Labels)
	}
	if w.Span != 6*time.Hour {
		t.Errorf("span %s, want the range's 6h (the default horizon)", w.Span)
	}
	if len(w.Excluded) != 2 {
		t.Errorf("excluded %v, want the DaemonSet pod and the CPU-only pod", w.Excluded)
	}
}

func TestPrometheusSavedResponse(t *testing.T) {
	w := loadExample(t, "ksm-range.json")
	checkKSMWorkload(t, w)
}

// The same series served by a Prometheus HTTP API on loopback, one
// query_range per metric, through client_golang's API client.
func TestPrometheusLive(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(examples, "ksm-range.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recorded struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values json.RawMessage   `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &recorded); err != nil {
		t.Fatal(err)
	}
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" {
			http.NotFound(rw, r)
			return
		}
		_ = r.ParseForm()
		q := r.Form.Get("query")
		queries = append(queries, q)
		if r.Form.Get("start") == "" || r.Form.Get("end") == "" || r.Form.Get("step") != "300" {
			http.Error(rw, `{"status":"error","errorType":"bad_data","error":"missing range"}`, http.StatusBadRequest)
			return
		}
		var out []any
		for _, s := range recorded.Data.Result {
			if s.Metric["__name__"] == q {
				out = append(out, s)
			}
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": out}})
	}))
	defer srv.Close()
	end := ksmStart.Add(6 * time.Hour)
	m, err := QueryPrometheus(context.Background(), srv.URL, ksmStart, end, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(queries, ",") != strings.Join(PrometheusMetrics, ",") {
		t.Errorf("queries %v, want one per metric %v", queries, PrometheusMetrics)
	}
	w, err := FromPrometheus(m, srv.URL, ksmStart, end, TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkKSMWorkload(t, w)
	// A server error is reported with the URL and the query.
	srv.Close()
	if _, err := QueryPrometheus(context.Background(), srv.URL, ksmStart, end, 5*time.Minute); err == nil || !strings.Contains(err.Error(), "kube_pod_created") {
		t.Errorf("error %v, want one naming the query", err)
	}
}

func TestBadPrometheusInput(t *testing.T) {
	dir := t.TempDir()
	created := `{"metric":{"__name__":"kube_pod_created","namespace":"a","pod":"p"},"values":[[1795996800,"1795996800"],[1795997100,"1795996800"]]}`
	for _, tc := range []struct{ name, content, want string }{
		{"error.json", `{"status":"error","errorType":"bad_data","error":"parse error"}`, `field "status": "error" (bad_data: parse error)`},
		{"vector.json", `{"status":"success","data":{"resultType":"vector","result":[]}}`, `field "data.resultType": "vector", want matrix`},
		{"resource.json", `{"status":"success","data":{"resultType":"matrix","result":[` + created + `,{"metric":{"__name__":"kube_pod_container_resource_requests","namespace":"a","pod":"p","container":"c","resource":"widgets"},"values":[[1795996800,"1"]]}]}}`,
			`label "resource": unknown resource "widgets"`},
		{"nocreated.json", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"kube_pod_labels","namespace":"a","pod":"p"},"values":[[1795996800,"1"]]}]}}`,
			"pod a/p (series"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadInput(path, TraceOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %v, want %q with the file name", err, tc.want)
			}
		})
	}
}

// A pod recreated under the same name (a new UID: a StatefulSet's pod, a
// Job's) is two pods: the first keeps the name and leaves when its series
// stop, the second is name.2 from its own creation.
func TestPrometheusPodIncarnations(t *testing.T) {
	t0 := model.TimeFromUnix(ksmStart.Unix())
	stream := func(uid string, from, to time.Duration, created time.Duration) *model.SampleStream {
		s := &model.SampleStream{Metric: model.Metric{"__name__": "kube_pod_created", "namespace": "db", "pod": "store-0", "uid": model.LabelValue(uid)}}
		for d := from; d <= to; d += time.Minute {
			s.Values = append(s.Values, model.SamplePair{Timestamp: t0.Add(d), Value: model.SampleValue(ksmStart.Add(created).Unix())})
		}
		return s
	}
	gpu := func(uid string, from, to time.Duration) *model.SampleStream {
		s := &model.SampleStream{Metric: model.Metric{"__name__": "kube_pod_container_resource_requests", "namespace": "db", "pod": "store-0", "uid": model.LabelValue(uid),
			"container": "c", "resource": "nvidia_com_gpu", "unit": "integer"}}
		for d := from; d <= to; d += time.Minute {
			s.Values = append(s.Values, model.SamplePair{Timestamp: t0.Add(d), Value: 1})
		}
		return s
	}
	m := model.Matrix{stream("u2", 2*time.Hour, 3*time.Hour, 2*time.Hour), gpu("u2", 2*time.Hour, 3*time.Hour),
		stream("u1", 0, time.Hour, -time.Hour), gpu("u1", 0, time.Hour)}
	w, err := FromPrometheus(m, "m", ksmStart, ksmStart.Add(3*time.Hour), TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := podsByKey(w)
	first, second := pods["db/store-0"], pods["db/store-0.2"]
	if len(pods) != 2 || first.Arrival != 0 || first.Deletion != time.Hour || second.Arrival != 2*time.Hour || second.Deletion != Forever {
		t.Errorf("incarnations %v, want store-0 [0, 1h) and store-0.2 [2h, forever)", w.Pods)
	}
}
