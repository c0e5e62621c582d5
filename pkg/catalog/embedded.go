package catalog

import (
	"bytes"
	_ "embed"
	"sync"
)

// EmbeddedSource is the name errors and exclusions use for the built-in data.
const EmbeddedSource = "data/aws-accelerated-instances.csv"

//go:embed data/aws-accelerated-instances.csv
var embeddedCSV []byte

// parseEmbedded runs once: the data cannot change at run time and
// GetInstanceTypes is on Karpenter's hot path.
var parseEmbedded = sync.OnceValues(func() (parsed, error) {
	entries, excluded, err := Parse(bytes.NewReader(embeddedCSV), EmbeddedSource)
	return parsed{entries, excluded}, err
})

type parsed struct {
	entries  []Entry
	excluded []Exclusion
}

// Embedded returns the built-in catalog (see data/README.md for provenance).
// Each call returns fresh copies, so callers may modify the result.
func Embedded() ([]Entry, []Exclusion, error) {
	p, err := parseEmbedded()
	if err != nil {
		return nil, nil, err
	}
	return cloneEntries(p.entries), append([]Exclusion(nil), p.excluded...), nil
}
