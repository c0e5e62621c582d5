package simulation

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A region the catalog has no prices for is an error, never a $0 fleet.
func TestNoPriceRegionIsAnError(t *testing.T) {
	w := load(t, "handchecked.yaml", TraceOptions{GPUMap: DefaultGPUMap()})
	cfg := DefaultConfig()
	cfg.Region = "us-west-2"
	_, err := Run(context.Background(), w, cfg)
	if err == nil || !strings.Contains(err.Error(), `region "us-west-2"`) || !strings.Contains(err.Error(), "no offering") {
		t.Fatalf("error %v, want one naming the region and the missing prices", err)
	}
}

// Slice keeps the pods alive in the window, counts those alive at its start
// and those arriving in it, and drops the rest (before and after).
func TestSliceCountsOnlyWindowPods(t *testing.T) {
	w := &Workload{Source: "test", Pods: []PodSpec{
		{Name: "gone", Arrival: 0, Deletion: time.Hour},                     // left before the window
		{Name: "alive", Arrival: 30 * time.Minute, Deletion: 3 * time.Hour}, // alive at its start
		{Name: "forever", Arrival: 0, Deletion: Forever},                    // alive at its start
		{Name: "arrives", Arrival: 90 * time.Minute, Deletion: 5 * time.Hour},
		{Name: "late", Arrival: 4 * time.Hour, Deletion: 6 * time.Hour}, // after its end
	}, Excluded: []ExcludedPod{{Name: "cpu-early", deletion: time.Hour}, {Name: "cpu-in", arrival: 2 * time.Hour, deletion: Forever}}}
	got, err := w.Slice(time.Hour, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]PodSpec{}
	for _, p := range got.Pods {
		names[p.Name] = p
	}
	if len(names) != 3 || names["alive"].Arrival != 0 || names["forever"].Deletion != Forever || names["arrives"].Arrival != 30*time.Minute || names["alive"].Deletion != 2*time.Hour {
		t.Fatalf("window pods %+v", got.Pods)
	}
	if got.Window.AliveAtStart != 2 || got.Window.Arrived != 1 {
		t.Fatalf("window counts %+v, want 2 alive at start and 1 arrived", got.Window)
	}
	if len(got.Excluded) != 1 || got.Excluded[0].Name != "cpu-in" {
		t.Fatalf("excluded %+v, want only the one alive in the window", got.Excluded)
	}
	w.Pods = w.Pods[:1]
	if _, err := w.Slice(10*time.Hour, time.Hour); err == nil || !strings.Contains(err.Error(), "no pod is alive") {
		t.Fatalf("an empty window: error %v", err)
	}
}

// The report carries its time series in the JSON (and back), and as CSV
// with one row per change and policy.
func TestTimeSeriesJSONAndCSV(t *testing.T) {
	w := load(t, "handchecked.yaml", TraceOptions{GPUMap: DefaultGPUMap()})
	r := run(t, w, func(c *Config) { c.Policy = PolicyStock })
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back := &Result{}
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
	if err := WriteCSV(&buf, back); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
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
