package workload

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fuzzSource names the fuzzed input in errors.
const fuzzSource = "fuzz.yaml"

// scenarioErrorRE is the shape of every ParseScenario error: the source,
// then a line when the parser knows one.
var scenarioErrorRE = regexp.MustCompile(`^` + regexp.QuoteMeta(fuzzSource) + `(?::(\d+))?: (.+)`)

// fieldErrorRE is an error that names a field: `source:line: field "x": ...`
// (field "" is the document itself, e.g. a root that is not a mapping).
var fieldErrorRE = regexp.MustCompile(`^` + regexp.QuoteMeta(fuzzSource) + `:\d+: field "(?:[^"\\]|\\.)*": \S`)

// FuzzScenario feeds ParseScenario (and, for small pod-group scenarios,
// Workload) arbitrary bytes, seeded with every scenario in testdata (this
// package's and the simulator's) and some malformed ones. Properties: no panic; an error is non-empty, starts with
// the source, carries a line within the input when it has one, and reads
// `field "path": problem` when it names a field; a scenario that parses
// holds what the simulator relies on (a node class, NodePools referring to
// it, valid pod groups or a trace).
func FuzzScenario(f *testing.F) {
	var seeds []string
	for _, dir := range []string{"testdata", filepath.Join("..", "testdata")} {
		m, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"---\n---\n",
		"podGroups: []\n",
		"podGroups:\n  - name: a\n    count: 1\n    requests: {nvidia.com/gpu: \"1\"}\ntrace: x.csv\n",
		"trace: pods.csv\n",
		"trace: [a]\n",
		"podGroups:\n  - &a {name: a, count: 1, requests: {cpu: \"1\"}}\n  - *a\n",
		"podGroups:\n  - name: a\n    count: 1\n    requests: {cpu: \"1\"}\n    duration: -5m\n",
		"podGroups:\n  - name: a\n    count: 1\n    requests: {nvidia.com/gpu: \"0.5\"}\n",
		"podGroups:\n  - name: A_b\n    count: 1e3\n    requests: {cpu: x}\n",
		"podGroups:\n  - name: a\n    count: 2\n    requests: {cpu: \"1\"}\n    requirements: [{key: '', operator: In}]\n",
		"podGroups:\n  - name: a\n    count: 1\n    requests: {cpu: \"1\"}\n    gpuModels: [T4, H800]\n",
		"podGroups: {a: 1}\n",
		"podGroups:\n  - name: a\n    name: b\n",
		"nodeClass: {apiVersion: v1, kind: Pod}\npodGroups: [{name: a, count: 1, requests: {cpu: '1'}}]\n",
		"nodeClass: [1]\ntrace: t.csv\n",
		"nodePools:\n  - metadata: {name: a}\n  - metadata: {name: a}\ntrace: t.csv\n",
		"nodePools:\n  - spec: {template: {spec: {terminationGracePeriod: 1h}}}\ntrace: t.csv\n",
		"nodePools:\n  - metadata: {name: a}\n    spec: {disruption: {consolidateAfter: 1m}, template: {spec: {expireAfter: Never}}}\ntrace: t.csv\n",
		"nodePools: [{metadata: {name: a}, spec: {template: {spec: {requirements: [{key: k, operator: Foo}]}}}}]\ntrace: t.csv\n",
		"? [a]\n: b\n",
		"{1: 2}\n",
		"podGroups:\n\t- name: a\n",
		"a: &x [*x]\n",
		"x: &a [a,a,a,a]\ny: &b [*a,*a,*a,*a]\nz: &c [*b,*b,*b,*b]\ntrace: t.csv\n",
		"\xff\xfe\x00p",
		"podGroups:\n  - name: a\n    count: 1\n    requests: {cpu: \"1\"}\n    labels: {1: 2}\n",
		"podGroups:\n  - name: a\n    count: 99999999999999999999\n    requests: {cpu: \"1\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseScenario(bytes.NewReader(in), fuzzSource)
		if err != nil {
			checkScenarioError(t, in, err.Error())
			if s != nil {
				t.Fatalf("ParseScenario returned a scenario and the error %q", err)
			}
			return
		}
		if s == nil || s.NodeClass == nil || s.NodeClass.Name == "" || s.Source != fuzzSource {
			t.Fatalf("ParseScenario = %+v without an error, want a node class and the source", s)
		}
		if (s.Trace == "") == (len(s.PodGroups) == 0) {
			t.Fatalf("scenario with trace %q and %d pod groups, want exactly one of them", s.Trace, len(s.PodGroups))
		}
		pools := map[string]bool{}
		for _, np := range s.NodePools {
			if np.Name == "" || pools[np.Name] {
				t.Fatalf("NodePool name %q empty or duplicate", np.Name)
			}
			pools[np.Name] = true
			if ref := np.Spec.Template.Spec.NodeClassRef; ref == nil || ref.Name == "" {
				t.Fatalf("NodePool %q without a node class reference", np.Name)
			}
		}
		total := 0
		groups := map[string]bool{}
		for _, g := range s.PodGroups {
			if g.Name == "" || groups[g.Name] || g.Count < 1 || len(g.Requests) == 0 || g.Arrival.Duration < 0 || g.Interval.Duration < 0 ||
				(g.Duration != nil && g.Duration.Duration < 0) {
				t.Fatalf("invalid pod group accepted: %+v", g)
			}
			groups[g.Name] = true
			total += min(g.Count, 1<<20)
		}
		if s.Trace != "" || total > 256 {
			return // no trace file to read; no large expansions
		}
		w, err := s.Workload(TraceOptions{GPUMap: DefaultGPUMap()})
		if err != nil {
			checkScenarioError(t, in, err.Error())
			return
		}
		if len(w.Pods) != total || len(w.NodePools) == 0 || w.NodeClass == nil {
			t.Fatalf("workload of %d pods and %d NodePools, want %d pods", len(w.Pods), len(w.NodePools), total)
		}
	})
}

// checkScenarioError checks an error message: non-empty, prefixed with the
// source, with a line inside the input when it gives one, and well formed
// when it names a field.
func checkScenarioError(t *testing.T, in []byte, msg string) {
	t.Helper()
	m := scenarioErrorRE.FindStringSubmatch(msg)
	if m == nil || strings.TrimSpace(m[2]) == "" {
		t.Fatalf("error %q does not start with %q and a message", msg, fuzzSource+":")
	}
	if m[1] != "" {
		line, err := strconv.Atoi(m[1])
		// yaml.v3 places an empty node after the last token, so the line
		// just past the input ("---" without a newline: line 2) is fine.
		if lines := bytes.Count(in, []byte("\n")) + 1; err != nil || line < 1 || line > lines+1 {
			t.Fatalf("error %q names line %s of a %d-line input", msg, m[1], lines)
		}
	}
	if strings.Contains(msg, ": field ") && !fieldErrorRE.MatchString(msg) {
		t.Fatalf("error %q names an empty field", msg)
	}
}
