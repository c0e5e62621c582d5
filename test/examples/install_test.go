package examples_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestIAMPolicyPlaceholdersAllSubstituted runs the README's envsubst step
// on providers/aws/iam-policy.json: the command must name every ${VAR} the
// policy uses (a missing one stays literal and, for ${NODE_ROLE_NAME},
// makes iam:PassRole fail at launch), and the result must be valid JSON
// with no placeholder left.
func TestIAMPolicyPlaceholdersAllSubstituted(t *testing.T) {
	root := repoRoot(t)
	policy, err := os.ReadFile(filepath.Join(root, "providers", "aws", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "charts", "karpenter-gpu", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	placeholder := regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)
	var used []string
	for _, m := range placeholder.FindAllStringSubmatch(string(policy), -1) {
		used = append(used, m[1])
	}
	slices.Sort(used)
	used = slices.Compact(used)
	if !slices.Contains(used, "NODE_ROLE_NAME") {
		t.Fatalf("policy placeholders %v: the PassRole statement should name ${NODE_ROLE_NAME}", used)
	}

	cmd := regexp.MustCompile(`envsubst '([^']*)'\s*\\?\s*<\s*providers/aws/iam-policy.json`).FindSubmatch(readme)
	if cmd == nil {
		t.Fatal("charts/karpenter-gpu/README.md has no `envsubst '...' < providers/aws/iam-policy.json` command")
	}
	listed := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(string(cmd[1]), -1) {
		listed[m[1]] = true
	}
	values := map[string]string{"AWS_PARTITION": "aws", "AWS_ACCOUNT_ID": "123456789012", "AWS_REGION": "us-west-2",
		"CLUSTER_NAME": "my-cluster", "NODE_ROLE_NAME": "KarpenterNodeRole-my-cluster", "INTERRUPTION_QUEUE": "karpenter-gpu-my-cluster"}
	for _, v := range used {
		if !listed[v] {
			t.Errorf("the README's envsubst list leaves ${%s} out: it would stay literal in the policy", v)
		}
		if _, ok := values[v]; !ok {
			t.Errorf("${%s}: no example value in this test", v)
		}
	}
	// envsubst with an explicit list replaces only the listed variables.
	out := placeholder.ReplaceAllStringFunc(string(policy), func(s string) string {
		name := s[2 : len(s)-1]
		if listed[name] {
			return values[name]
		}
		return s
	})
	if left := placeholder.FindAllString(out, -1); len(left) > 0 {
		t.Errorf("placeholders left after substitution: %v", left)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("substituted policy is not JSON: %v", err)
	}
	if !strings.Contains(out, `"arn:aws:iam::123456789012:role/KarpenterNodeRole-my-cluster"`) {
		t.Error("PassRole resource is not the node role's ARN after substitution")
	}
}

// TestServiceMonitorHonorsLabels renders the chart with bin/helm (built by
// tools/helm/lint.sh, which `make test` runs first) with the ServiceMonitor
// on, and checks Prometheus keeps the metrics' own namespace label
// (honorLabels), scraping the metrics port of the chart's Service.
func TestServiceMonitorHonorsLabels(t *testing.T) {
	root := repoRoot(t)
	helm := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("%s not found: run `make chart` (tools/helm/lint.sh builds it) or `make test`", helm)
	}
	for name, args := range map[string][]string{
		"enabled": {"--set", "serviceMonitor.enabled=true"},
		"eks":     {"-f", filepath.Join(root, "tools", "helm", "values-eks.yaml")},
		"endpointConfig cannot unset it": {"--set", "serviceMonitor.enabled=true",
			"--set", "serviceMonitor.endpointConfig.scrapeTimeout=10s"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(helm, append([]string{"template", "karpenter-gpu", filepath.Join(root, "charts", "karpenter-gpu"),
				"--namespace", "karpenter", "--kube-version", "1.36.1", "--show-only", "templates/servicemonitor.yaml"}, args...)...)
			cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			objs := decodeBytes(t, out)
			if len(objs) != 1 || objs[0].GetKind() != "ServiceMonitor" {
				t.Fatalf("want one ServiceMonitor, got %d objects", len(objs))
			}
			endpoints, _, err := unstructured.NestedSlice(objs[0].Object, "spec", "endpoints")
			if err != nil || len(endpoints) != 1 {
				t.Fatalf("endpoints %v (%v)", endpoints, err)
			}
			ep := endpoints[0].(map[string]any)
			if ep["honorLabels"] != true {
				t.Errorf("honorLabels = %v: Prometheus would rename the metrics' namespace label to exported_namespace", ep["honorLabels"])
			}
			if ep["port"] != "http-metrics" || ep["path"] != "/metrics" {
				t.Errorf("endpoint %v", ep)
			}
		})
	}
	t.Run("disabled by default", func(t *testing.T) {
		out, err := exec.Command(helm, "template", "karpenter-gpu", filepath.Join(root, "charts", "karpenter-gpu"),
			"--namespace", "karpenter", "--kube-version", "1.36.1").CombinedOutput()
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "kind: ServiceMonitor") {
			t.Error("ServiceMonitor rendered with default values (needs the prometheus-operator CRD)")
		}
	})
}
