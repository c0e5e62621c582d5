package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
)

// --group-by with a Kubernetes label key on a kube-state-metrics export:
// the cost is split by app.kubernetes.io/part-of although kube-state-
// metrics called it label_app_kubernetes_io_part_of (train-a: llm-train,
// the web pods: chat, short: none), and the report says how the name was
// mapped.
func TestGroupByKSMLabel(t *testing.T) {
	jsonOut := filepath.Join(t.TempDir(), "r.json")
	var out, errOut bytes.Buffer
	args := []string{"--trace", filepath.Join(ex, "ksm-range.json"), "--policy", "karpenter-gpu", "--no-cache", "--quiet",
		"--group-by", "app.kubernetes.io/part-of", "--json", jsonOut}
	if err := run(args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var r report.Result
	readJSON(t, jsonOut, &r)
	ca := r.CostAllocation
	if ca == nil || ca.GroupBy != "app.kubernetes.io/part-of" {
		t.Fatalf("cost allocation %+v", ca)
	}
	pods := map[string]int{}
	for _, row := range ca.ByLabel {
		pods[row.Key] = row.Pods
	}
	if diff := cmp.Diff(map[string]int{"chat": 2, "llm-train": 1, "<none>": 1}, pods); diff != "" {
		t.Errorf("pods by app.kubernetes.io/part-of (-want +got):\n%s", diff)
	}
	if !strings.Contains(out.String()+errOut.String(), `kube-state-metrics names label "app.kubernetes.io/part-of" label_app_kubernetes_io_part_of: 3 pods carry it`) {
		t.Errorf("report lacks the mapping note:\n%s", out.String())
	}
}
