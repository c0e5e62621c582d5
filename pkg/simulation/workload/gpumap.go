package workload

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// GPUTarget says which catalog GPUs a trace GPU model may run on.
type GPUTarget struct {
	// GPUNames are catalog gpu-name label values (karpenter-gpu.io/gpu-name).
	GPUNames []string `json:"gpuNames,omitempty"`
	// MinGPUMemoryMiB, when set, also requires that much memory per GPU
	// (karpenter-gpu.io/gpu-memory), e.g. the 32 GiB V100 of p3dn.
	MinGPUMemoryMiB int64 `json:"minGPUMemoryMiB,omitempty"`
	// Any means the model puts no constraint on the GPU (any GPU the pod's
	// other requirements allow).
	Any bool `json:"any,omitempty"`
}

func (t GPUTarget) String() string {
	if t.Any {
		return "any GPU"
	}
	s := strings.Join(t.GPUNames, "|")
	if t.MinGPUMemoryMiB > 0 {
		s += fmt.Sprintf(" with >= %d MiB", t.MinGPUMemoryMiB)
	}
	return s
}

// GPUMap maps the GPU model names of a trace (the Alibaba gpu_spec column)
// onto catalog GPUs.
type GPUMap map[string]GPUTarget

// DefaultGPUMap maps the models of the Alibaba v2023 trace onto the AWS
// catalog:
//   - T4 → t4 (g4dn): the same GPU;
//   - V100M16 → v100 (p3): the same GPU, 16 GiB;
//   - V100M32 → v100 with at least 32 GiB (p3dn.24xlarge only);
//   - P100 → v100 (p3): AWS has no P100; the V100 is its successor on the
//     same platform and the closest match;
//   - A10 → a10g (g5): the AWS variant of the A10;
//   - G1, G2, G3 → any GPU: they are Alibaba-internal models with no public
//     specification, so no constraint is the only choice that invents
//     nothing.
//
// Override it with --gpu-map FILE, or drop GPU model constraints with
// --ignore-gpu-model.
func DefaultGPUMap() GPUMap {
	return GPUMap{
		"T4":      {GPUNames: []string{"t4"}},
		"V100M16": {GPUNames: []string{"v100"}},
		"V100M32": {GPUNames: []string{"v100"}, MinGPUMemoryMiB: 32768},
		"P100":    {GPUNames: []string{"v100"}},
		"A10":     {GPUNames: []string{"a10g"}},
		"G1":      {Any: true},
		"G2":      {Any: true},
		"G3":      {Any: true},
	}
}

// Models returns the mapped model names, sorted.
func (m GPUMap) Models() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Describe renders the mapping for reports, one "MODEL → target" per model.
func (m GPUMap) Describe() map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.String()
	}
	return out
}

// LoadGPUMap reads a GPU map file: a YAML mapping from trace model to
// target, e.g.
//
//	T4: {gpuNames: [t4]}
//	V100M32: {gpuNames: [v100], minGPUMemoryMiB: 32768}
//	G2: {any: true}
//
// Unknown keys are errors naming the file and line.
func LoadGPUMap(path string) (GPUMap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseGPUMap(bytes.NewReader(b), path)
}

// Validate checks every target against the catalog in use: each GPU name
// must be offered by some entry (with enough memory when a minimum is set),
// and a target is either Any or names GPUs.
func (m GPUMap) Validate(entries []catalog.Entry, source string) error {
	for _, model := range m.Models() {
		t := m[model]
		if t.Any {
			if len(t.GPUNames) > 0 || t.MinGPUMemoryMiB > 0 {
				return fmt.Errorf("%s: model %q: any: true excludes gpuNames and minGPUMemoryMiB", source, model)
			}
			continue
		}
		if len(t.GPUNames) == 0 {
			return fmt.Errorf("%s: model %q: no gpuNames (use any: true for no constraint)", source, model)
		}
		for _, name := range t.GPUNames {
			found := false
			for _, e := range entries {
				if e.GPUName == name && e.GPUMemoryMiB >= t.MinGPUMemoryMiB {
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("%s: model %q: the catalog has no GPU %q%s", source, model, name,
					map[bool]string{true: fmt.Sprintf(" with >= %d MiB", t.MinGPUMemoryMiB), false: ""}[t.MinGPUMemoryMiB > 0])
			}
		}
	}
	return nil
}

// Requirements turns the allowed models of one pod into node requirements:
// the union of their GPU names, and a memory floor only when every model
// has one (the smallest). Any model without constraint makes the pod
// unconstrained. An unknown model is an error.
func (m GPUMap) Requirements(models []string) ([]corev1.NodeSelectorRequirement, error) {
	if len(models) == 0 {
		return nil, nil
	}
	names := map[string]bool{}
	minMem := int64(-1)
	for _, model := range models {
		t, ok := m[model]
		if !ok {
			return nil, fmt.Errorf("unknown GPU model %q (mapped models: %s; see --gpu-map)", model, strings.Join(m.Models(), ", "))
		}
		if t.Any {
			return nil, nil
		}
		for _, n := range t.GPUNames {
			names[n] = true
		}
		if minMem < 0 || t.MinGPUMemoryMiB < minMem {
			minMem = t.MinGPUMemoryMiB
		}
	}
	values := make([]string, 0, len(names))
	for n := range names {
		values = append(values, n)
	}
	sort.Strings(values)
	reqs := []corev1.NodeSelectorRequirement{{Key: v1alpha1.LabelGPUName, Operator: corev1.NodeSelectorOpIn, Values: values}}
	if minMem > 0 {
		reqs = append(reqs, corev1.NodeSelectorRequirement{Key: v1alpha1.LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{strconv.FormatInt(minMem-1, 10)}})
	}
	return reqs, nil
}
