package workload

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // substrings of the error: file, line, field, problem
	}{
		{"bad_malformed.csv", []string{"bad_malformed.csv:3:", `field "cpu_milli"`, "malformed"}},
		{"bad_unknown_column.csv", []string{"bad_unknown_column.csv:1:", `field "flavor"`, "unknown column"}},
		{"bad_negative_duration.csv", []string{"bad_negative_duration.csv:4:", `field "deletion_time"`, "negative duration"}},
		{"bad_gpu_model.csv", []string{"bad_gpu_model.csv:3:", `field "gpu_spec"`, `unknown GPU model "H800"`}},
		{"bad_scenario_unknown_field.yaml", []string{"bad_scenario_unknown_field.yaml:6:", `field "podGroups[0].gpuModel"`, "unknown field"}},
		{"bad_scenario_negative.yaml", []string{"bad_scenario_negative.yaml:5:", `field "podGroups[0].duration"`, "negative duration"}},
		{"bad_scenario_gpu_model.yaml", []string{"bad_scenario_gpu_model.yaml:5:", `field "a.gpuModels"`, `unknown GPU model "H800"`}},
		{"bad_scenario_nodepool.yaml", []string{"bad_scenario_nodepool.yaml:6:", `field "nodePools[0].spec.template.spec.requirement"`, "unknown field"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadInput(filepath.Join("testdata", tc.file), TraceOptions{GPUMap: DefaultGPUMap()})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	t.Run("bad_gpumap.yaml", func(t *testing.T) {
		_, err := LoadGPUMap(filepath.Join("testdata", "bad_gpumap.yaml"))
		for _, s := range []string{"bad_gpumap.yaml:2:", `field "V100M32.minMemoryMiB"`, "unknown field"} {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("error %v does not contain %q", err, s)
			}
		}
	})
	t.Run("gpu map names a GPU the catalog lacks", func(t *testing.T) {
		m := GPUMap{"X1": {GPUNames: []string{"x1"}}}
		if err := m.Validate(nil, "map.yaml"); err == nil || !strings.Contains(err.Error(), `model "X1"`) {
			t.Errorf("error %v does not name the model", err)
		}
	})
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
