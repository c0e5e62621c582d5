package coexistence_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/karpenter-gpu/karpenter-gpu/test/chaos"
	"github.com/karpenter-gpu/karpenter-gpu/test/manifests"
)

// walkthrough is the "Beside Karpenter for AWS" section of the chart's
// README, as a platform engineer would copy it.
type walkthrough struct {
	// objects are the YAML blocks' objects (GPUNodeClass, NodePool, Pod).
	objects []*unstructured.Unstructured
	// sh are the shell blocks, continuation lines joined.
	sh []string
}

const walkthroughSection = "## Beside Karpenter for AWS"

func readWalkthrough(t *testing.T) *walkthrough {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chaos.RepoRoot(), "charts", "karpenter-gpu", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "\n"+walkthroughSection+"\n")
	if start < 0 {
		t.Fatalf("charts/karpenter-gpu/README.md has no %q section", walkthroughSection)
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	w := &walkthrough{}
	block := regexp.MustCompile("(?ms)^( *)```(yaml|sh)\n(.*?)^ *```\n")
	for _, m := range block.FindAllStringSubmatch(section, -1) {
		indent, lang, body := m[1], m[2], m[3]
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			lines = append(lines, strings.TrimPrefix(l, indent))
		}
		text := strings.Join(lines, "\n")
		switch lang {
		case "yaml":
			w.objects = append(w.objects, decode(t, text)...)
		case "sh":
			w.sh = append(w.sh, strings.ReplaceAll(text, "\\\n", " "))
		}
	}
	if len(w.objects) == 0 || len(w.sh) == 0 {
		t.Fatalf("%s: no manifests or commands found", walkthroughSection)
	}
	return w
}

func decode(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	out, err := manifests.Decode([]byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return out
}

// object returns the walk-through's object of a kind.
func (w *walkthrough) object(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range w.objects {
		if o.GetKind() == kind {
			return o.DeepCopy()
		}
	}
	t.Fatalf("%s: no %s manifest", walkthroughSection, kind)
	return nil
}

// command returns the walk-through's shell text from the line that contains
// all of words to the end of that line's block (a quoted argument may span
// lines).
func (w *walkthrough) command(t *testing.T, words ...string) string {
	t.Helper()
	for _, block := range w.sh {
		lines := strings.Split(block, "\n")
		for i, line := range lines {
			ok := true
			for _, word := range words {
				ok = ok && strings.Contains(line, word)
			}
			if ok {
				return strings.Join(lines[i:], "\n")
			}
		}
	}
	t.Fatalf("%s: no command with %q", walkthroughSection, words)
	return ""
}

// patchArg is the argument of -p '...' in a kubectl patch command.
func patchArg(t *testing.T, cmd string) []byte {
	t.Helper()
	m := regexp.MustCompile(`(?s)-p '(.*?)'`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("no -p '...' in %q", cmd)
	}
	return []byte(m[1])
}

// exampleEnv gives the README's environment variables example values.
var exampleEnv = map[string]string{
	"CLUSTER_NAME": "my-cluster", "CLUSTER_ENDPOINT": "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com",
	"AWS_REGION": "us-west-2", "ROLE_ARN": "arn:aws:iam::123456789012:role/KarpenterGPUController-my-cluster",
	"KARPENTER_GPU_NAMESPACE": "karpenter-gpu",
}

// TestWalkthroughInstallRendersAsDocumented renders the chart with the
// walk-through's `helm upgrade --install` flags (bin/helm, built by
// tools/helm/lint.sh, which `make test` runs first) and checks what the
// next commands rely on: no karpenter.sh CRD is rendered (Karpenter-AWS's
// stay), the pods carry app.kubernetes.io/name=karpenter-gpu, the Lease is
// karpenter-gpu-leader-election, the ServiceAccount is karpenter-gpu (the
// IRSA trust policy of Install on EKS names it), and nothing is named as
// Karpenter-AWS's controller is.
func TestWalkthroughInstallRendersAsDocumented(t *testing.T) {
	w := readWalkthrough(t)
	install, _, _ := strings.Cut(w.command(t, "helm upgrade --install"), "\n")
	var args []string
	for _, m := range regexp.MustCompile(`--set ([^ ]+)`).FindAllStringSubmatch(install, -1) {
		set := regexp.MustCompile(`"\$([A-Z_]+)"`).ReplaceAllStringFunc(m[1], func(v string) string {
			value, ok := exampleEnv[strings.Trim(v, `"$`)]
			if !ok {
				t.Fatalf("no example value for %s", v)
			}
			return value
		})
		args = append(args, "--set", set)
	}
	if !strings.Contains(strings.Join(args, " "), "crds.karpenter.install=false") {
		t.Fatalf("the walk-through's install does not set crds.karpenter.install=false: %q", install)
	}
	root := chaos.RepoRoot()
	helm := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("%s not found: run `make chart` (tools/helm/lint.sh builds it) or `make test`", helm)
	}
	cmd := exec.Command(helm, append([]string{"template", "karpenter-gpu", filepath.Join(root, "charts", "karpenter-gpu"),
		"--namespace", exampleEnv["KARPENTER_GPU_NAMESPACE"], "--kube-version", "1.36.1"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	objs := decode(t, string(out))
	var leaseEnv, podLabel bool
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && strings.HasSuffix(o.GetName(), ".karpenter.sh") {
			t.Errorf("renders %s: it would replace Karpenter-AWS's", o.GetName())
		}
		if o.GetName() == "karpenter" || o.GetName() == "karpenter-leader-election" {
			t.Errorf("%s %s is named as Karpenter-AWS's", o.GetKind(), o.GetName())
		}
		switch o.GetKind() {
		case "ServiceAccount":
			if o.GetName() != "karpenter-gpu" {
				t.Errorf("ServiceAccount %s, the IRSA trust policy names karpenter-gpu", o.GetName())
			}
		case "Deployment":
			labels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
			podLabel = labels["app.kubernetes.io/name"] == "karpenter-gpu"
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				env, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
				for _, e := range env {
					e := e.(map[string]any)
					if e["name"] == "LEADER_ELECTION_NAME" && e["value"] == "karpenter-gpu-leader-election" {
						leaseEnv = true
					}
					if e["name"] == "CLUSTER_NAME" && e["value"] != exampleEnv["CLUSTER_NAME"] {
						t.Errorf("CLUSTER_NAME %v", e["value"])
					}
				}
			}
		}
	}
	if !podLabel {
		t.Error("controller pods lack app.kubernetes.io/name=karpenter-gpu (kubectl get pods -l ...)")
	}
	if !leaseEnv {
		t.Error("leader election Lease is not karpenter-gpu-leader-election (kubectl get lease ...)")
	}
	for _, want := range []string{"get lease karpenter-gpu-leader-election", "-l app.kubernetes.io/name=karpenter-gpu"} {
		w.command(t, want)
	}
}
