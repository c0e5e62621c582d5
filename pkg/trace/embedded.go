package trace

import (
	"bytes"
	"embed"
	"fmt"
	"path"
)

// Names of the embedded pod lists (see data/README.md for provenance).
const (
	DefaultPodList    = "alibaba-v2023-openb_pod_list_default.csv"
	MultiGPU50PodList = "alibaba-v2023-openb_pod_list_multigpu50.csv"
)

//go:embed data/*.csv
var data embed.FS

// Embedded parses one of the embedded pod lists, DefaultPodList or
// MultiGPU50PodList.
func Embedded(name string) ([]Pod, error) {
	b, err := data.ReadFile(path.Join("data", name))
	if err != nil {
		return nil, fmt.Errorf("embedded pod list %q: %w", name, err)
	}
	return Parse(bytes.NewReader(b), name)
}
