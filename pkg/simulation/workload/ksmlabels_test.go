package workload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kube-state-metrics' label names, worked out by hand from its rule
// (replace what a Prometheus label name cannot hold with _, split
// lowerUpper with _, lower-case).
func TestKSMLabelName(t *testing.T) {
	for key, want := range map[string]string{
		"team":                      "team",
		"Team":                      "team",
		"app.kubernetes.io/name":    "app_kubernetes_io_name",
		"app.kubernetes.io/part-of": "app_kubernetes_io_part_of",
		"teamName":                  "team_name",
		"cost-center":               "cost_center",
		"x/ID2Go":                   "x_id2_go",
		"a.B":                       "a_b",
		"aBCd":                      "a_bcd",
		"pod-template-hash":         "pod_template_hash",
		"team_a":                    "team_a",
		"ünit":                      "_nit",
	} {
		if got := KSMLabelName(key); got != want {
			t.Errorf("KSMLabelName(%q) = %q, want %q", key, got, want)
		}
	}
}

// The example's kube-state-metrics export carries app.kubernetes.io/part-of
// as label_app_kubernetes_io_part_of (train-a: llm-train, the two web pods:
// chat, short: none): --group-by app.kubernetes.io/part-of finds it. A pod
// whose two team labels (Team and team) collided, so that kube-state-
// metrics emitted label_team_conflict1 and label_team_conflict2, gets no
// team: which one was "team" is unknown.
func TestMapKSMLabel(t *testing.T) {
	w := loadExample(t, "ksm-range.json")
	if !w.KSMLabels {
		t.Fatal("a kube-state-metrics workload does not say its labels are kube-state-metrics names")
	}
	notes := w.MapKSMLabel("app.kubernetes.io/part-of")
	got := map[string]string{}
	for _, p := range w.Pods {
		got[p.Key()] = p.Labels["app.kubernetes.io/part-of"]
	}
	want := map[string]string{"ml-research/train-a": "llm-train", "inference/web-abc12-xyz": "chat", "inference/web-abc12-old": "chat", "batch/short": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("app.kubernetes.io/part-of (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`kube-state-metrics names label "app.kubernetes.io/part-of" label_app_kubernetes_io_part_of: 3 pods carry it`}, notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}

	// short's labels collided on "team".
	b, err := os.ReadFile(filepath.Join(examples, "ksm-range.json"))
	if err != nil {
		t.Fatal(err)
	}
	var resp map[string]any
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	for _, s := range resp["data"].(map[string]any)["result"].([]any) {
		m := s.(map[string]any)["metric"].(map[string]any)
		if m["__name__"] == "kube_pod_labels" && m["pod"] == "short" {
			delete(m, "label_team")
			m["label_team_conflict1"], m["label_team_conflict2"] = "Research", "research"
		}
	}
	b, err = json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	w, err = FromPrometheusFile(b, "conflict.json", TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	notes = w.MapKSMLabel("team")
	teams := map[string]string{}
	for _, p := range w.Pods {
		teams[p.Key()] = p.Labels["team"]
	}
	if diff := cmp.Diff(map[string]string{"ml-research/train-a": "research", "inference/web-abc12-xyz": "serving", "inference/web-abc12-old": "serving", "batch/short": ""}, teams); diff != "" {
		t.Errorf("team (-want +got):\n%s", diff)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], `1 pod carries several labels kube-state-metrics names label_team (label_team_conflict1, ...), so which one is "team" is unknown`) ||
		!strings.Contains(notes[0], "batch/short") {
		t.Errorf("notes %q", notes)
	}

	// Not a kube-state-metrics input: labels are Kubernetes keys already.
	k := loadExample(t, "cluster-pods.json")
	if k.KSMLabels || k.MapKSMLabel("app.kubernetes.io/part-of") != nil {
		t.Error("a pod list's labels were treated as kube-state-metrics names")
	}
}
