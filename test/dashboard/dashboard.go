// Package dashboard reads the chart's Grafana dashboard for the tests that
// check its queries against the metrics the code exports.
package dashboard

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Panel is one dashboard panel: its title and its targets' PromQL.
type Panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// Panels reads charts/karpenter-gpu/files/dashboard.json below the
// repository root (a path relative to the test's package).
func Panels(t testing.TB, root string) []Panel {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "charts", "karpenter-gpu", "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []Panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatal(err)
	}
	return dashboard.Panels
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// MetricName is the exported name of a single-metric collector.
func MetricName(t testing.TB, c prometheus.Collector) string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 1)
	c.Describe(ch)
	m := fqName.FindStringSubmatch((<-ch).String())
	if m == nil {
		t.Fatalf("no metric name in %v", c)
	}
	return m[1]
}
