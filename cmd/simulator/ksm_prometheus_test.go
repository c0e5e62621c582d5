package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
	"github.com/karpenter-gpu/karpenter-gpu/test/syncbuf"
)

// prometheusBinaries are the Prometheus server and promtool that
// tools/build-prometheus.sh builds from the module proxy (the version of
// tools/prometheus/go.mod) into bin/prometheus; `make test` builds them
// first (target prometheus-bin), so the test is skipped only where they were
// never built.
func prometheusBinaries(t *testing.T) (server, promtool string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "bin", "prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	server, promtool = filepath.Join(dir, "prometheus"), filepath.Join(dir, "promtool")
	for _, p := range []string{server, promtool} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is absent: `make prometheus-bin` (tools/build-prometheus.sh, a few minutes cold) builds Prometheus from tools/prometheus/go.mod; `make test` does it first", p)
		}
	}
	return server, promtool
}

// ksmRequest is one kube_pod_container_resource_requests series.
type ksmRequest struct {
	container, resource, unit string
	value                     float64
}

// ksmPod is what kube-state-metrics exports about one pod object: its
// series exist (sampled every minute, as a 1-minute scrape stores them)
// over [from, to]; kube_pod_completion_time and
// kube_pod_deletion_timestamp appear when the pod completes or its deletion
// begins (zero: never) and last as long as its other series.
type ksmPod struct {
	namespace, name, uid string
	created              time.Time
	from, to             time.Time
	completed, deleted   time.Time
	ownerKind, ownerName string
	requests             []ksmRequest
	labels               map[string]string // exported names, without label_
}

// openMetrics writes the pods' series as OpenMetrics text with
// timestamps, what `promtool tsdb create-blocks-from openmetrics` backfills.
func openMetrics(pods []ksmPod) string {
	var b strings.Builder
	ids := func(p ksmPod) string {
		return fmt.Sprintf(`job="kube-state-metrics",instance="10.0.3.7:8080",namespace=%q,pod=%q,uid=%q`, p.namespace, p.name, p.uid)
	}
	samples := func(metric, labels string, from, to time.Time, value float64) {
		for at := from; !at.After(to); at = at.Add(time.Minute) {
			fmt.Fprintf(&b, "%s{%s} %g %d\n", metric, labels, value, at.Unix())
		}
	}
	unix := func(t time.Time) float64 { return float64(t.Unix()) }
	for _, metric := range workload.PrometheusMetrics {
		fmt.Fprintf(&b, "# TYPE %s gauge\n", metric)
		for _, p := range pods {
			switch metric {
			case "kube_pod_created":
				samples(metric, ids(p), p.from, p.to, unix(p.created))
			case "kube_pod_completion_time":
				if !p.completed.IsZero() {
					samples(metric, ids(p), p.completed, p.to, unix(p.completed))
				}
			case "kube_pod_deletion_timestamp":
				if !p.deleted.IsZero() {
					samples(metric, ids(p), p.deleted, p.to, unix(p.deleted))
				}
			case "kube_pod_container_resource_requests":
				for _, r := range p.requests {
					samples(metric, fmt.Sprintf(`%s,container=%q,node="ip-10-0-1-12.ec2.internal",resource=%q,unit=%q`, ids(p), r.container, r.resource, r.unit),
						p.from, p.to, r.value)
				}
			case "kube_pod_owner":
				controller := "true"
				if p.ownerKind == "<none>" {
					controller = "<none>"
				}
				samples(metric, fmt.Sprintf(`%s,owner_kind=%q,owner_name=%q,owner_is_controller=%q`, ids(p), p.ownerKind, p.ownerName, controller), p.from, p.to, 1)
			case "kube_pod_labels":
				l := ids(p)
				for _, k := range slices.Sorted(maps.Keys(p.labels)) {
					l += fmt.Sprintf(`,label_%s=%q`, k, p.labels[k])
				}
				samples(metric, l, p.from, p.to, 1)
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}

// startPrometheus backfills the series into a TSDB with promtool and serves
// it with a real Prometheus on a free loopback port; it returns its URL.
//
// Backfilled samples carry no staleness markers (a scrape writes one when a
// series disappears), so a series that stops is still returned for the
// lookback delta after its last sample; the server runs with a lookback
// delta of the samples' spacing (1 minute) so that a series ends where its
// samples end, as it does for scraped series.
func startPrometheus(t *testing.T, server, promtool, series string) string {
	t.Helper()
	dir := t.TempDir()
	om, data := filepath.Join(dir, "ksm.om"), filepath.Join(dir, "data")
	if err := os.WriteFile(om, []byte(series), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", om, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 1m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A free loopback port: the listener is closed before Prometheus binds
	// it, so another process may take it first; then Prometheus exits and
	// the next port is tried.
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		url, logs, err := servePrometheus(t, server, cfg, data, addr)
		if err == nil {
			return url
		}
		if attempt == 3 || !strings.Contains(logs, "address already in use") {
			t.Fatalf("prometheus on %s: %v\n%s", addr, err, logs)
		}
	}
}

// servePrometheus runs Prometheus on addr until the test ends and waits for
// it to be ready; it returns its URL, or its logs and why it is not ready.
func servePrometheus(t *testing.T, server, cfg, data, addr string) (string, string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, server, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--query.lookback-delta=1m", "--log.level=warn")
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		return "", "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cancel()
		<-exited
	}
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			cancel()
			return "", logs.String(), fmt.Errorf("exited: %v", err)
		default:
		}
		if resp, err := http.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return url, "", nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", logs.String(), fmt.Errorf("not ready after 30 s")
		}
	}
}

// TestKSMFromRealPrometheus loads six hours of kube-state-metrics series
// into a real Prometheus (bin/prometheus, built from the module proxy by
// tools/build-prometheus.sh; promtool backfills the series) and reads them
// with the simulator's --prometheus input, over the range [T0, T0+6h] at a
// 1-minute step:
//
//   - ml/train-a-0-k7x2p, a Job's pod created 40 min before T0 and completed
//     at T0+2h30m (its series go on: Job pods stay), requests 4 GPUs, 6+2 CPU
//     in two containers, 64 GiB: [0, 2h30m), batch, Job/train-a;
//   - two replicas of Deployment web (ReplicaSet web-7d9f8c6b5 and
//     pod-template-hash 7d9f8c6b5): x2x4z, created 3 h before T0 (before the
//     stored series begin), deleted at T0+3h, and its replacement q8r7t
//     created then: [0, 3h) and [3h, end), service, Deployment/web;
//   - ml/trainer-0 of StatefulSet trainer, deleted at T0+1h and recreated
//     under its name (another UID) at T0+1h02m: trainer-0 [0, 1h) and
//     trainer-0.2 [1h02m, end), 2 GPUs each, service;
//   - ml/notebook, a bare pod whose series stop at T0+4h with no completion
//     or deletion series: [1h, 4h), batch, Pod/notebook;
//   - a DaemonSet pod (dcgm-exporter) and a CPU-only pod (coredns):
//     excluded and counted.
//
// The workload must be exactly that, labels under kube-state-metrics'
// names; and the simulator's whole run on it (--group-by
// app.kubernetes.io/part-of, mapped back to label_app_kubernetes_io_part_of)
// must report those pods, their GPU-hours requested by namespace, label and
// pod group (GPUs × lifetime), and a cost allocation adding up to the fleet
// cost; and `simulator preview --prometheus` must preview the pods alive at
// the range's end as `preview --cluster` does their kubectl pod list.
func TestKSMFromRealPrometheus(t *testing.T) {
	server, promtool := prometheusBinaries(t)
	// Whole hours in the recent past: inside the TSDB's retention, and
	// whole minutes so that the range's steps fall on the samples.
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-7 * time.Hour)
	t1 := t0.Add(6 * time.Hour)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	first := t0.Add(-time.Hour) // the stored series begin an hour before the range
	gpu := func(n float64) ksmRequest { return ksmRequest{"main", "nvidia_com_gpu", "integer", n} }
	cpu := func(c string, n float64) ksmRequest { return ksmRequest{c, "cpu", "core", n} }
	mem := func(gib float64) ksmRequest { return ksmRequest{"main", "memory", "byte", gib * (1 << 30)} }
	pods := []ksmPod{
		{namespace: "ml", name: "train-a-0-k7x2p", uid: "5b0e7a52-1", created: at(-40 * time.Minute), from: at(-40 * time.Minute), to: t1,
			completed: at(150 * time.Minute), ownerKind: "Job", ownerName: "train-a",
			requests: []ksmRequest{gpu(4), cpu("main", 6), cpu("sidecar", 2), mem(64)},
			labels:   map[string]string{"team": "research", "app_kubernetes_io_part_of": "llm-train", "batch_kubernetes_io_job_name": "train-a"}},
		{namespace: "inference", name: "web-7d9f8c6b5-x2x4z", uid: "7c1d-x2x4z", created: at(-3 * time.Hour), from: first, to: at(3*time.Hour + time.Minute),
			deleted: at(3 * time.Hour), ownerKind: "ReplicaSet", ownerName: "web-7d9f8c6b5",
			requests: []ksmRequest{gpu(1), cpu("main", 4), mem(16)},
			labels:   map[string]string{"team": "chat", "app_kubernetes_io_part_of": "chat", "pod_template_hash": "7d9f8c6b5"}},
		{namespace: "inference", name: "web-7d9f8c6b5-q8r7t", uid: "7c1d-q8r7t", created: at(3 * time.Hour), from: at(3 * time.Hour), to: t1,
			ownerKind: "ReplicaSet", ownerName: "web-7d9f8c6b5",
			requests: []ksmRequest{gpu(1), cpu("main", 4), mem(16)},
			labels:   map[string]string{"team": "chat", "app_kubernetes_io_part_of": "chat", "pod_template_hash": "7d9f8c6b5"}},
		{namespace: "ml", name: "trainer-0", uid: "9e2f-1", created: at(-2 * time.Hour), from: first, to: at(time.Hour + time.Minute),
			deleted: at(time.Hour), ownerKind: "StatefulSet", ownerName: "trainer",
			requests: []ksmRequest{gpu(2), cpu("main", 8), mem(32)}, labels: map[string]string{"team": "research"}},
		{namespace: "ml", name: "trainer-0", uid: "9e2f-2", created: at(62 * time.Minute), from: at(62 * time.Minute), to: t1,
			ownerKind: "StatefulSet", ownerName: "trainer",
			requests: []ksmRequest{gpu(2), cpu("main", 8), mem(32)}, labels: map[string]string{"team": "research"}},
		{namespace: "ml", name: "notebook", uid: "0a4b", created: at(time.Hour), from: at(time.Hour), to: at(4 * time.Hour),
			ownerKind: "<none>", ownerName: "<none>",
			requests: []ksmRequest{gpu(1), cpu("main", 2), mem(8)}, labels: map[string]string{"team": "research"}},
		{namespace: "monitoring", name: "dcgm-exporter-4xk2p", uid: "d1", created: at(-5 * time.Hour), from: first, to: t1,
			ownerKind: "DaemonSet", ownerName: "dcgm-exporter", requests: []ksmRequest{cpu("main", 0.1)}, labels: map[string]string{}},
		{namespace: "kube-system", name: "coredns-5d78c9869d-abcde", uid: "c1", created: at(-5 * time.Hour), from: first, to: t1,
			ownerKind: "ReplicaSet", ownerName: "coredns-5d78c9869d", requests: []ksmRequest{cpu("coredns", 0.1), {"coredns", "memory", "byte", 70 << 20}},
			labels: map[string]string{"k8s_app": "kube-dns", "pod_template_hash": "5d78c9869d"}},
	}
	url := startPrometheus(t, server, promtool, openMetrics(pods))
	start, end := t0.Format(time.RFC3339), t1.Format(time.RFC3339)

	// The workload the --prometheus input reads.
	w, err := loadPrometheus(&finopsFlags{prometheus: url, promStart: start, promEnd: end, promStep: time.Minute}, "",
		workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	if err != nil {
		t.Fatal(err)
	}
	type pod struct {
		Arrival, Deletion    time.Duration
		GPUs                 int64
		CPU, Memory          string
		Group, Class         string
		Team, PartOf, Labels string
	}
	summary := func(w *workload.Workload) map[string]pod {
		m := map[string]pod{}
		for _, p := range w.Pods {
			cpu, memory := p.Requests[corev1.ResourceCPU], p.Requests[corev1.ResourceMemory]
			m[p.Key()] = pod{p.Arrival, p.Deletion, p.GPUs(), cpu.String(), memory.String(), p.Group, p.Annotations[evictioncost.AnnotationWorkloadClass],
				p.Labels["team"], p.Labels["app_kubernetes_io_part_of"], fmt.Sprint(len(p.Labels))}
		}
		return m
	}
	got := summary(w)
	batch, service, forever := string(evictioncost.Batch), string(evictioncost.Service), workload.Forever
	want := map[string]pod{
		"ml/train-a-0-k7x2p":            {0, 150 * time.Minute, 4, "8", "64Gi", "Job/train-a", batch, "research", "llm-train", "3"},
		"inference/web-7d9f8c6b5-x2x4z": {0, 3 * time.Hour, 1, "4", "16Gi", "Deployment/web", service, "chat", "chat", "3"},
		"inference/web-7d9f8c6b5-q8r7t": {3 * time.Hour, forever, 1, "4", "16Gi", "Deployment/web", service, "chat", "chat", "3"},
		"ml/trainer-0":                  {0, time.Hour, 2, "8", "32Gi", "StatefulSet/trainer", service, "research", "", "1"},
		"ml/trainer-0.2":                {62 * time.Minute, forever, 2, "8", "32Gi", "StatefulSet/trainer", service, "research", "", "1"},
		"ml/notebook":                   {time.Hour, 4 * time.Hour, 1, "2", "8Gi", "Pod/notebook", batch, "research", "", "1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pods read from Prometheus (-want +got):\n%s", diff)
	}
	excluded := map[string]string{}
	for _, e := range w.Excluded {
		excluded[e.Name] = e.Reason
	}
	if diff := cmp.Diff(map[string]string{
		"monitoring/dcgm-exporter-4xk2p":       "DaemonSet pod (per-node overhead, not a workload to provision for)",
		"kube-system/coredns-5d78c9869d-abcde": "requests no GPU (--cpu-pods=exclude)",
	}, excluded); diff != "" {
		t.Errorf("excluded pods (-want +got):\n%s", diff)
	}
	if w.Span != 6*time.Hour || !strings.Contains(w.Source, start) || !strings.Contains(w.Source, url) {
		t.Errorf("span %s, source %q: want 6h, the URL and the range", w.Span, w.Source)
	}

	// The same series saved as the README saves them (one query_range of
	// workload.PrometheusQuery, 60 s step) and read with --trace: the same
	// workload.
	q := neturl.Values{"query": {workload.PrometheusQuery}, "start": {fmt.Sprint(t0.Unix())}, "end": {fmt.Sprint(t1.Unix())}, "step": {"60"}}
	resp, err := http.Get(url + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	saved, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("query_range %s: %v %s\n%.500s", q.Encode(), err, resp.Status, saved)
	}
	savedPath := filepath.Join(t.TempDir(), "ksm.json")
	if err := os.WriteFile(savedPath, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := workload.LoadInput(savedPath, workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, summary(fromFile)); diff != "" || len(fromFile.Excluded) != 2 || fromFile.Span != 6*time.Hour {
		t.Errorf("the saved query_range response read with --trace: %d excluded, span %s (want 2, 6h); pods (-want +got):\n%s", len(fromFile.Excluded), fromFile.Span, diff)
	}

	// The simulator's whole run on that input.
	jsonOut := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	args := []string{"--prometheus", url, "--prometheus-start", start, "--prometheus-end", end, "--prometheus-step", "1m",
		"--policy", "karpenter-gpu", "--no-cache", "--quiet", "--group-by", "app.kubernetes.io/part-of", "--json", jsonOut}
	if err := run(args, &out, &errOut); err != nil {
		t.Fatalf("simulator %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var r report.Result
	readJSON(t, jsonOut, &r)
	if r.GPUPodsTotal != 6 || r.PodsExcluded != 2 || r.PodsUnschedulable != 0 || r.PodsNeverStarted != 0 || r.SimulatedHours != 6 {
		t.Errorf("report: %d GPU pods, %d excluded, %d unschedulable, %d never started, %.2f h simulated; want 6, 2, 0, 0, 6 h",
			r.GPUPodsTotal, r.PodsExcluded, r.PodsUnschedulable, r.PodsNeverStarted, r.SimulatedHours)
	}
	ca := r.CostAllocation
	if ca == nil {
		t.Fatal("report has no cost allocation")
	}
	type row struct {
		Pods     int
		GPUHours string
	}
	rows := func(rs []report.AllocationRow) map[string]row {
		m := map[string]row{}
		for _, x := range rs {
			m[x.Key] = row{x.Pods, fmt.Sprintf("%.3f", x.GPUHoursRequested)}
		}
		return m
	}
	// GPUs × lifetime within the 6 h range: train-a 4 × 2.5 h; web 1 × 3 h
	// twice; trainer-0 2 × 1 h and trainer-0.2 2 × 4 h 58 min; notebook 1 × 3 h.
	trainer := 2*1 + 2*(6-62.0/60)
	for _, dim := range []struct {
		name string
		got  []report.AllocationRow
		want map[string]row
	}{
		{"namespace", ca.ByNamespace, map[string]row{"ml": {4, fmt.Sprintf("%.3f", 10+trainer+3)}, "inference": {2, "6.000"}}},
		{"app.kubernetes.io/part-of", ca.ByLabel, map[string]row{"llm-train": {1, "10.000"}, "chat": {2, "6.000"}, "<none>": {3, fmt.Sprintf("%.3f", trainer+3)}}},
		{"pod group", ca.ByPodGroup, map[string]row{"ml/Job/train-a": {1, "10.000"}, "inference/Deployment/web": {2, "6.000"},
			"ml/StatefulSet/trainer": {2, fmt.Sprintf("%.3f", trainer)}, "ml/Pod/notebook": {1, "3.000"}}},
	} {
		if diff := cmp.Diff(dim.want, rows(dim.got)); diff != "" {
			t.Errorf("cost allocation by %s (-want +got):\n%s", dim.name, diff)
		}
	}
	var sum float64
	for _, x := range ca.ByNamespace {
		sum += x.CostUSD
	}
	if r.CostUSD <= 0 || math.Abs(sum+ca.IdleUSD-r.CostUSD) > 0.01 {
		t.Errorf("namespaces $%.4f + idle $%.4f != fleet $%.4f (or no cost)", sum, ca.IdleUSD, r.CostUSD)
	}
	if s := out.String(); !strings.Contains(s, `kube-state-metrics names label "app.kubernetes.io/part-of" label_app_kubernetes_io_part_of: 3 pods carry it`) ||
		!strings.Contains(s, url+" (kube-state-metrics, "+start+" to "+end+")") {
		t.Errorf("report lacks the input or the label mapping note:\n%s", s)
	}

	// preview with the cluster's pods from Prometheus: those alive at the
	// range's end (web-7d9f8c6b5-q8r7t and trainer-0's second incarnation)
	// are the cluster; it must preview exactly as the kubectl pod list of
	// the same two pods does.
	t.Run("preview", func(t *testing.T) {
		dir := t.TempDir()
		podList := filepath.Join(dir, "pods.yaml")
		if err := os.WriteFile(podList, []byte(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: trainer-0
    namespace: ml
    labels: {team: research}
    ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: trainer, uid: s1, controller: true}]
  spec:
    containers: [{name: main, image: i, resources: {requests: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "2"}, limits: {nvidia.com/gpu: "2"}}}]
  status: {phase: Running}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-7d9f8c6b5-q8r7t
    namespace: inference
    labels: {team: chat, app.kubernetes.io/part-of: chat, pod-template-hash: 7d9f8c6b5}
    ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f8c6b5, uid: r1, controller: true}]
  spec:
    containers: [{name: main, image: i, resources: {requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "1"}, limits: {nvidia.com/gpu: "1"}}}]
  status: {phase: Running}
`), 0o644); err != nil {
			t.Fatal(err)
		}
		preview := func(input ...string) ([]PreviewResult, string) {
			jsonOut := filepath.Join(t.TempDir(), "preview.json")
			var out, errOut bytes.Buffer
			args := append(append([]string{"preview"}, input...), "--add", filepath.Join(ex, "train-job.yaml"), "--json", jsonOut)
			if err := run(args, &out, &errOut); err != nil {
				t.Fatalf("simulator %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
			}
			var got []PreviewResult
			readJSON(t, jsonOut, &got)
			return got, out.String()
		}
		fromProm, text := preview("--prometheus", url, "--prometheus-start", start, "--prometheus-end", end)
		fromList, _ := preview("--cluster", podList)
		if len(fromProm) != 2 || len(fromList) != 2 {
			t.Fatalf("%d and %d results, want 2 each", len(fromProm), len(fromList))
		}
		for i, p := range fromProm {
			l := fromList[i]
			t.Logf("%s: before $%.3f/h (%v GPUs), after $%.3f/h (%v GPUs), launched %v", p.Policy, p.BeforeUSDPerHour, p.GPUsBefore, p.AfterUSDPerHour, p.GPUsAfter, describeInstances(p.Launched))
			if p.Baseline != baselineFleet || p.AddedPods != 2 || p.GPUsBefore < 3 || p.BeforeUSDPerHour <= 0 || len(p.AddedPodsPending) > 0 {
				t.Errorf("%s: baseline %q, %d added pods, %v GPUs and $%.3f/h before, pending %v: want the simulated fleet of the cluster's 3 GPUs, 2 added pods running",
					p.Policy, p.Baseline, p.AddedPods, p.GPUsBefore, p.BeforeUSDPerHour, p.AddedPodsPending)
			}
			if p.Policy != l.Policy || math.Abs(p.BeforeUSDPerHour-l.BeforeUSDPerHour) > 1e-9 || math.Abs(p.AfterUSDPerHour-l.AfterUSDPerHour) > 1e-9 ||
				p.GPUsBefore != l.GPUsBefore || p.GPUsAfter != l.GPUsAfter || describeInstances(p.Launched) != describeInstances(l.Launched) ||
				describeInstances(p.Terminated) != describeInstances(l.Terminated) {
				t.Errorf("%s from Prometheus: before $%.3f after $%.3f GPUs %v→%v launched [%s] retired [%s]; from the pod list: before $%.3f after $%.3f GPUs %v→%v launched [%s] retired [%s]",
					p.Policy, p.BeforeUSDPerHour, p.AfterUSDPerHour, p.GPUsBefore, p.GPUsAfter, describeInstances(p.Launched), describeInstances(p.Terminated),
					l.BeforeUSDPerHour, l.AfterUSDPerHour, l.GPUsBefore, l.GPUsAfter, describeInstances(l.Launched), describeInstances(l.Terminated))
			}
		}
		if !strings.Contains(text, "to "+url+" (kube-state-metrics, "+start+" to "+end+") (2 pods)") {
			t.Errorf("preview output does not name the Prometheus range and its 2 pods:\n%s", text)
		}
	})
}
