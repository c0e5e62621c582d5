package simulation

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// A region the catalog has no prices for is an error, never a $0 fleet.
func TestNoPriceRegionIsAnError(t *testing.T) {
	w := load(t, "handchecked.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	cfg := DefaultConfig()
	cfg.Region = "us-west-2"
	_, err := Run(context.Background(), w, cfg)
	if err == nil || !strings.Contains(err.Error(), `region "us-west-2"`) || !strings.Contains(err.Error(), "no offering") {
		t.Fatalf("error %v, want one naming the region and the missing prices", err)
	}
}

// The report carries its time series in the JSON (and back), and as CSV
// with one row per change and policy.
func TestTimeSeriesJSONAndCSV(t *testing.T) {
	w := load(t, "handchecked.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	r := run(t, w, func(c *Config) { c.Policy = PolicyStock })
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back := &report.Result{}
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	if back.Series == nil || len(back.Series.Cost) != len(r.Series.Cost) || len(back.Series.Cost) < 2 {
		t.Fatalf("series lost in JSON: %+v", back.Series)
	}
	// One g4dn.metal ($7.824/h) from the first launch until it is removed.
	if v := back.Series.Cost[0].V; v < 7.823 || v > 7.825 {
		t.Fatalf("first fleet cost point %v, want 7.824", back.Series.Cost[0])
	}
	var buf bytes.Buffer
	if err := report.WriteCSV(&buf, back); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3 || strings.Join(rows[0], ",") != strings.Join(report.CSVHeader, ",") {
		t.Fatalf("CSV %v", rows)
	}
	sawFleet := false
	for _, row := range rows[1:] {
		if row[0] != "stock" {
			t.Fatalf("row %v names no policy", row)
		}
		if row[2] == "7.824" && row[3] == "8" {
			sawFleet = true
		}
	}
	if !sawFleet {
		t.Fatalf("no row shows the g4dn.metal ($7.824/h, 8 GPUs paid): %v", rows)
	}
}
