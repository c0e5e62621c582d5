package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// yamlFile decodes YAML strictly, with errors of the form
// `file:line: field "path": problem`. Structure is read from yaml.v3 nodes
// (for line numbers); values of Kubernetes types are decoded through their
// JSON form with unknown fields disallowed, as the API server would.
type yamlFile struct{ source string }

// parseYAMLDocument reads exactly one YAML document and returns its root node.
func parseYAMLDocument(r io.Reader, source string) (*yaml.Node, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:1: empty document", source)
		}
		return nil, fmt.Errorf("%s: %s", source, yamlErrorText(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: a second YAML document; put everything in one", source, extra.Line)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("%s:1: expected one YAML document", source)
	}
	return doc.Content[0], nil
}

// parseYAMLMapping reads exactly one YAML document whose root is a mapping
// (a scenario, a GPU map) and returns the root and its keys and values in
// order.
func parseYAMLMapping(r io.Reader, source string) (yamlFile, *yaml.Node, [][2]*yaml.Node, error) {
	f := yamlFile{source: source}
	root, err := parseYAMLDocument(r, source)
	if err != nil {
		return f, nil, nil, err
	}
	kvs, err := f.mapping(root, "")
	return f, root, kvs, err
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlErrorText rewrites "yaml: line N: msg" as "N: msg" so the caller's
// "source:" prefix yields "source:N: msg".
func yamlErrorText(err error) string {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1] + ": " + m[2]
	}
	return err.Error()
}

func (f yamlFile) errorf(n *yaml.Node, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return fmt.Errorf("%s:%d: field %q: %s", f.source, line, field, fmt.Sprintf(format, args...))
}

// mapping returns the key/value pairs of a mapping node in order, rejecting
// duplicate keys.
func (f yamlFile) mapping(n *yaml.Node, field string) ([][2]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, f.errorf(n, field, "expected a mapping, got %s", kindName(n))
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, f.errorf(k, field, "keys must be strings")
		}
		if seen[k.Value] {
			return nil, f.errorf(k, join(field, k.Value), "duplicate key")
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

func (f yamlFile) sequence(n *yaml.Node, field string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, f.errorf(n, field, "expected a list, got %s", kindName(n))
	}
	return n.Content, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// decodeList decodes each item of the list n, the document's field name,
// strictly (decodeStrict) into a new T and hands it to use with its node and
// its field, name[i]; it returns the items.
func decodeList[T any](f yamlFile, n *yaml.Node, name string, use func(item *yaml.Node, field string, v *T) error) ([]*yaml.Node, error) {
	items, err := f.sequence(n, name)
	if err != nil {
		return nil, err
	}
	for i, item := range items {
		field := fmt.Sprintf("%s[%d]", name, i)
		v := new(T)
		if err := f.decodeStrict(item, field, v); err != nil {
			return nil, err
		}
		if err := use(item, field, v); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// decodeStrict decodes node n into out (a type with JSON tags) through JSON
// with unknown fields disallowed. Errors name the line of the offending key
// when it can be found, else the line of n.
func (f yamlFile) decodeStrict(n *yaml.Node, field string, out any) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return f.errorf(n, field, "%s", yamlErrorText(err))
	}
	v, err := jsonCompatible(v)
	if err != nil {
		return f.errorf(n, field, "%v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return f.errorf(n, field, "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			at := findPath(n, te.Field)
			return f.errorf(at, join(field, te.Field), "expected %s, got %s", te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			at, path := findKey(n, name, "")
			return f.errorf(at, join(field, path), "unknown field")
		default:
			return f.errorf(n, field, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return nil
}

// jsonCompatible turns yaml.v3's generic values into ones encoding/json
// accepts (it already uses map[string]any for string-keyed mappings).
func jsonCompatible(v any) (any, error) {
	var err error
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if t[k], err = jsonCompatible(e); err != nil {
				return nil, err
			}
		}
		return t, nil
	case map[any]any:
		return nil, fmt.Errorf("mapping keys must be strings")
	case []any:
		for i, e := range t {
			if t[i], err = jsonCompatible(e); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	return v, nil
}

// findKey returns the first mapping key named name under n (depth first)
// and its dotted path; n itself when absent.
func findKey(n *yaml.Node, name, path string) (*yaml.Node, string) {
	if at, p, ok := findKeyRec(n, name, path); ok {
		return at, p
	}
	return n, path
}

func findKeyRec(n *yaml.Node, name, path string) (*yaml.Node, string, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				return n.Content[i], join(path, name), true
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if at, p, ok := findKeyRec(n.Content[i+1], name, join(path, n.Content[i].Value)); ok {
				return at, p, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if at, p, ok := findKeyRec(c, name, fmt.Sprintf("%s[%d]", path, i)); ok {
				return at, p, true
			}
		}
	}
	return nil, "", false
}

// findPath follows a dotted JSON field path (as in UnmarshalTypeError)
// through mappings; it stops at the deepest node found.
func findPath(n *yaml.Node, path string) *yaml.Node {
	if path == "" {
		return n
	}
	for _, part := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return n
		}
		next := (*yaml.Node)(nil)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// ParseGPUMap reads a GPU map (see LoadGPUMap) from r.
func ParseGPUMap(r io.Reader, source string) (GPUMap, error) {
	f, root, kvs, err := parseYAMLMapping(r, source)
	if err != nil {
		return nil, err
	}
	m := GPUMap{}
	for _, kv := range kvs {
		var t GPUTarget
		if err := f.decodeStrict(kv[1], kv[0].Value, &t); err != nil {
			return nil, err
		}
		if t.MinGPUMemoryMiB < 0 {
			return nil, f.errorf(kv[1], kv[0].Value+".minGPUMemoryMiB", "negative value %d", t.MinGPUMemoryMiB)
		}
		if !t.Any && len(t.GPUNames) == 0 {
			return nil, f.errorf(kv[1], kv[0].Value, "give gpuNames, or any: true for no constraint")
		}
		m[kv[0].Value] = t
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%s:%d: no models mapped", source, root.Line)
	}
	return m, nil
}
