// Command crdpatch copies Karpenter core's NodePool, NodeClaim and NodeOverlay
// CRDs into pkg/apis/crds, adding CEL rules that restrict the karpenter-gpu.io
// label domain the way core restricts karpenter.sh: NodePool/NodeClaim
// requirement keys and NodePool template labels in that domain are accepted
// only if they are labels this provider registers.
//
// Usage (from the repository root):
//
//	crdpatch -core "$(go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)/pkg/apis/crds" -out pkg/apis/crds
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

const (
	nodePoolsFile    = "karpenter.sh_nodepools.yaml"
	nodeClaimsFile   = "karpenter.sh_nodeclaims.yaml"
	nodeOverlaysFile = "karpenter.sh_nodeoverlays.yaml"
)

// Paths, below a version's openAPIV3Schema, of the schemas that get rules.
var (
	nodePoolRequirementKey  = []string{"properties", "spec", "properties", "template", "properties", "spec", "properties", "requirements", "items", "properties", "key"}
	nodePoolTemplateLabels  = []string{"properties", "spec", "properties", "template", "properties", "metadata", "properties", "labels"}
	nodeClaimRequirementKey = []string{"properties", "spec", "properties", "requirements", "items", "properties", "key"}
)

// Rule is one x-kubernetes-validations entry.
type Rule struct {
	Message string
	Rule    string
}

func domainMessage() string {
	return fmt.Sprintf("label domain %q is restricted", v1alpha1.Group)
}

func celList(keys []string) string {
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = strconv.Quote(k)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// RequirementKeyRule restricts a requirement key (a string) to the registered
// karpenter-gpu.io labels when it is in that domain.
func RequirementKeyRule() Rule {
	return Rule{
		Message: domainMessage(),
		Rule:    fmt.Sprintf(`self in %s || !self.find("^([^/]+)").endsWith(%q)`, celList(v1alpha1.RequirementLabels), v1alpha1.Group),
	}
}

// LabelsRule restricts template label keys (a map) to the well-known
// karpenter-gpu.io labels when they are in that domain.
func LabelsRule() Rule {
	return Rule{
		Message: domainMessage(),
		Rule:    fmt.Sprintf(`self.all(x, x in %s || !x.find("^([^/]+)").endsWith(%q))`, celList(v1alpha1.WellKnownLabels), v1alpha1.Group),
	}
}

// Patch adds rules to the CRD named file and returns the result.
func Patch(file string, in []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", file, err)
	}
	if len(doc.Content) != 1 {
		return nil, fmt.Errorf("%s: expected one YAML document", file)
	}
	var patches map[string][]Rule
	var paths map[string][]string
	switch file {
	case nodePoolsFile:
		patches = map[string][]Rule{"key": {RequirementKeyRule()}, "labels": {LabelsRule()}}
		paths = map[string][]string{"key": nodePoolRequirementKey, "labels": nodePoolTemplateLabels}
	case nodeClaimsFile:
		patches = map[string][]Rule{"key": {RequirementKeyRule()}}
		paths = map[string][]string{"key": nodeClaimRequirementKey}
	case nodeOverlaysFile:
		return in, nil
	default:
		return nil, fmt.Errorf("no patch defined for %s", file)
	}
	versions := lookup(doc.Content[0], "spec", "versions")
	if versions == nil || versions.Kind != yaml.SequenceNode || len(versions.Content) == 0 {
		return nil, fmt.Errorf("%s: spec.versions not found", file)
	}
	for _, version := range versions.Content {
		root := lookup(version, "schema", "openAPIV3Schema")
		if root == nil {
			return nil, fmt.Errorf("%s: version without schema.openAPIV3Schema", file)
		}
		for name, rules := range patches {
			target := lookup(root, paths[name]...)
			if target == nil || target.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("%s: schema %s not found", file, strings.Join(paths[name], "."))
			}
			addRules(target, rules)
		}
	}
	var out bytes.Buffer
	out.WriteString("---\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", file, err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// lookup walks mapping keys from n; nil if any is missing.
func lookup(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// addRules appends rules to schema's x-kubernetes-validations, creating it if
// needed. A rule already present (same rule text) is not added twice.
func addRules(schema *yaml.Node, rules []Rule) {
	const key = "x-kubernetes-validations"
	seq := lookup(schema, key)
	if seq == nil {
		seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		schema.Content = append(schema.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, seq)
	}
	for _, r := range rules {
		if lookupRule(seq, r.Rule) {
			continue
		}
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "message"},
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: r.Message},
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "rule"},
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: r.Rule},
		}})
	}
}

func lookupRule(seq *yaml.Node, rule string) bool {
	for _, item := range seq.Content {
		if r := lookup(item, "rule"); r != nil && r.Value == rule {
			return true
		}
	}
	return false
}

func main() {
	core := flag.String("core", "", "directory holding Karpenter core's CRDs (sigs.k8s.io/karpenter/pkg/apis/crds)")
	out := flag.String("out", "pkg/apis/crds", "output directory")
	flag.Parse()
	if *core == "" {
		log.Fatal("-core is required")
	}
	for _, file := range []string{nodePoolsFile, nodeClaimsFile, nodeOverlaysFile} {
		in, err := os.ReadFile(filepath.Join(*core, file))
		if err != nil {
			log.Fatal(err)
		}
		patched, err := Patch(file, in)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*out, file), patched, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
