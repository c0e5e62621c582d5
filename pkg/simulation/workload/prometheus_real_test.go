package workload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestRealPrometheus runs a real Prometheus (bin/prometheus/prometheus from
// `make prometheus-bin`, else one on PATH such as Debian's package; skipped
// when there is neither) scraping kube-state-
// metrics' series from a loopback server every second: pod a (created an
// hour before the range, 1 GPU, 2 CPU, two containers' requests), pod b
// (removed from the exposition at the switch: it left), pod c (created at
// the switch). The range query through QueryPrometheus must give a at 0 and
// never leaving, b leaving at the switch (its last scrape, within the scrape
// interval) and c arriving at it.
func TestRealPrometheus(t *testing.T) {
	// The pinned build of `make prometheus-bin` first, else one on PATH.
	bin, err := filepath.Abs(filepath.Join("..", "..", "..", "bin", "prometheus", "prometheus"))
	if _, serr := os.Stat(bin); err != nil || serr != nil {
		if bin, err = exec.LookPath("prometheus"); err != nil {
			t.Skip("no bin/prometheus/prometheus (make prometheus-bin) and no prometheus on PATH")
		}
	}
	if testing.Short() {
		t.Skip("starts a Prometheus server (about 15 s)")
	}
	start := time.Now().Truncate(time.Second)
	var mu sync.Mutex
	var switched time.Time
	series := func(ns, pod string, created int64, gpus int, owner string) string {
		l := fmt.Sprintf(`namespace="%s",pod="%s",uid="uid-%s"`, ns, pod, pod)
		return strings.Join([]string{
			fmt.Sprintf("kube_pod_created{%s} %d", l, created),
			fmt.Sprintf(`kube_pod_container_resource_requests{%s,container="main",resource="nvidia_com_gpu",unit="integer"} %d`, l, gpus),
			fmt.Sprintf(`kube_pod_container_resource_requests{%s,container="main",resource="cpu",unit="core"} 1.5`, l),
			fmt.Sprintf(`kube_pod_container_resource_requests{%s,container="sidecar",resource="cpu",unit="core"} 0.5`, l),
			fmt.Sprintf(`kube_pod_container_resource_requests{%s,container="main",resource="memory",unit="byte"} %d`, l, int64(8)<<30),
			fmt.Sprintf(`kube_pod_owner{%s,owner_kind="Job",owner_name="%s",owner_is_controller="true"} 1`, l, owner),
			fmt.Sprintf(`kube_pod_labels{%s,label_team="research"} 1`, l),
		}, "\n") + "\n"
	}
	ksm := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4")
		body := "# TYPE kube_pod_created gauge\n" + series("ml", "a", start.Add(-time.Hour).Unix(), 1, "a")
		if switched.IsZero() {
			body += series("ml", "b", start.Unix(), 2, "b")
		} else {
			body += series("ml", "c", switched.Unix(), 1, "c")
		}
		_, _ = rw.Write([]byte(body))
	}))
	defer ksm.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: kube-state-metrics\n    honor_labels: true\n    static_configs: [{targets: [%q]}]\n",
		strings.TrimPrefix(ksm.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	url := "http://" + addr
	// Scrapes until Prometheus has b (it may take seconds to start), the
	// switch, then scrapes until it has c and three seconds more.
	waitFor := func(pod string) {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			m, err := QueryPrometheus(context.Background(), url, start, time.Now(), time.Second)
			if err == nil && strings.Contains(m.String(), `pod="`+pod+`"`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus has no series of pod %s after 60 s: %v\n%s", pod, err, logs.String())
			}
		}
	}
	waitFor("b")
	time.Sleep(2 * time.Second)
	mu.Lock()
	switched = time.Now().Truncate(time.Second).Add(time.Second)
	for time.Now().Before(switched) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Unlock()
	waitFor("c")
	time.Sleep(3 * time.Second)
	end := time.Now().Truncate(time.Second)
	var w *Workload
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Second) {
		m, err := QueryPrometheus(context.Background(), url, start, end, time.Second)
		if err == nil {
			if w, err = FromPrometheus(m, url, start, end, TraceOptions{}); err == nil && len(w.Pods) == 3 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no workload of 3 pods from Prometheus: %v (workload %v)\n%s", err, w, logs.String())
		}
	}
	pods := podsByKey(w)
	sw := switched.Sub(start)
	a, b, c := pods["ml/a"], pods["ml/b"], pods["ml/c"]
	if a.Arrival != 0 || a.Deletion != Forever {
		t.Errorf("a: [%s, %s), want [0, forever)", a.Arrival, a.Deletion)
	}
	if b.Arrival != 0 || b.Deletion < sw-2*time.Second || b.Deletion > sw+time.Second {
		t.Errorf("b: [%s, %s), want [0, about %s) (its last scrape)", b.Arrival, b.Deletion, sw)
	}
	if c.Arrival != sw || c.Deletion != Forever {
		t.Errorf("c: [%s, %s), want [%s, forever)", c.Arrival, c.Deletion, sw)
	}
	checkRequests(t, a, map[corev1.ResourceName]string{"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"})
	if b.GPUs() != 2 || a.Group != "Job/a" || a.Labels["team"] != "research" {
		t.Errorf("b GPUs %d, a group %q labels %v", b.GPUs(), a.Group, a.Labels)
	}
}
