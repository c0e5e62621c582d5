package catalog

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Column names of the catalog CSV. Columns are found by name, not position,
// so the file can gain price columns or be reordered without code changes.
const (
	colName        = "instance_type"
	colFamily      = "family"
	colArch        = "arch"
	colVCPU        = "vcpu"
	colMemory      = "memory_mib"
	colGPUMaker    = "gpu_manufacturer"
	colGPUName     = "gpu_name"
	colGPUCount    = "gpu_count"
	colGPUMemory   = "gpu_memory_mib_per_gpu"
	colAccResource = "accelerator_resource"
	colAccCount    = "accelerator_count"
	colEFA         = "efa_count"
	colBandwidth   = "network_bandwidth_mbps"
	colNVMe        = "local_nvme_gib"
	colMaxPods     = "max_pods"
	priceColPrefix = "price_ondemand_" // + region with "_" for "-", e.g. price_ondemand_us_east_1
)

// requiredColumns must all be present. All fact columns are required: a
// missing column would silently read as "0" for every row (e.g. no EFA),
// which is a wrong fact rather than a missing one. Price columns are optional.
var requiredColumns = []string{
	colName, colFamily, colArch, colVCPU, colMemory, colGPUMaker, colGPUName, colGPUCount,
	colGPUMemory, colAccResource, colAccCount, colEFA, colBandwidth, colNVMe, colMaxPods,
}

// LoadFile parses a catalog CSV from disk; errors name the path.
func LoadFile(path string) ([]Entry, []Exclusion, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a catalog CSV. source names the input in errors, which have the
// form "source:line: field \"name\": problem".
//
// Malformed input (bad numbers, unknown or missing columns, duplicate types)
// is an error: the file is wrong and nothing from it should be trusted.
// Well-formed rows that lack facts needed to build an instance type are
// returned in excluded with a reason instead.
func Parse(r io.Reader, source string) (entries []Entry, excluded []Exclusion, err error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%s: empty input, want a header line", source)
	}
	if err != nil {
		return nil, nil, csvError(source, err)
	}
	cols, err := parseHeader(source, header)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, csvError(source, err)
		}
		line, _ := cr.FieldPos(0)
		e, err := cols.entry(rec, fmt.Sprintf("%s:%d", source, line))
		if err != nil {
			return nil, nil, err
		}
		if prev, dup := seen[e.Name]; dup {
			return nil, nil, fmt.Errorf("%s:%d: field %q: duplicate instance type %q (first on line %d)", source, line, colName, e.Name, prev)
		}
		seen[e.Name] = line
		if reason := incompleteReason(&e); reason != "" {
			excluded = append(excluded, Exclusion{Name: e.Name, Reason: reason})
			continue
		}
		entries = append(entries, e)
	}
	return entries, excluded, nil
}

// csvError keeps the file:line shape for errors from encoding/csv.
func csvError(source string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %w", source, pe.StartLine, pe.Err)
	}
	return fmt.Errorf("%s: %w", source, err)
}

// limit bounds integer cells far above any real machine, so arithmetic on
// them (MiB to bytes, millicores, time-slicing multiples) cannot overflow.
func limit(col string) int64 {
	switch col {
	case colMemory, colGPUMemory, colNVMe, colBandwidth:
		return 1 << 40
	default: // counts: vcpu, devices, EFA, pods
		return 1 << 24
	}
}

// columns maps column names to record indexes.
type columns struct {
	index  map[string]int
	prices []priceColumn // in header order, so errors are deterministic
}

type priceColumn struct {
	name, region string
	index        int
}

func parseHeader(source string, header []string) (*columns, error) {
	c := &columns{index: map[string]int{}}
	known := map[string]bool{}
	for _, name := range requiredColumns {
		known[name] = true
	}
	for i, raw := range header {
		name := strings.TrimSpace(raw)
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // spreadsheet exports add a BOM
		}
		if _, dup := c.index[name]; dup {
			return nil, fmt.Errorf("%s:1: field %q: duplicate column", source, name)
		}
		switch {
		case known[name]:
		case strings.HasPrefix(name, priceColPrefix) && len(name) > len(priceColPrefix):
			region := strings.ReplaceAll(strings.TrimPrefix(name, priceColPrefix), "_", "-")
			c.prices = append(c.prices, priceColumn{name: name, region: region, index: i})
		default:
			return nil, fmt.Errorf("%s:1: field %q: unknown column", source, name)
		}
		c.index[name] = i
	}
	for _, name := range requiredColumns {
		if _, ok := c.index[name]; !ok {
			return nil, fmt.Errorf("%s:1: field %q: missing required column", source, name)
		}
	}
	return c, nil
}

// entry converts one record; at is "source:line" for errors.
func (c *columns) entry(rec []string, at string) (Entry, error) {
	str := func(col string) string { return strings.TrimSpace(rec[c.index[col]]) }
	var firstErr error
	num := func(col string) int64 {
		s := str(col)
		if s == "" || firstErr != nil {
			return 0
		}
		v, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			firstErr = fmt.Errorf("%s: field %q: invalid integer %q", at, col, s)
		case v < 0:
			firstErr = fmt.Errorf("%s: field %q: negative value %d", at, col, v)
		case v > limit(col):
			firstErr = fmt.Errorf("%s: field %q: %d exceeds %d", at, col, v, limit(col))
		}
		return v
	}
	e := Entry{
		Name:                 str(colName),
		Family:               str(colFamily),
		Arch:                 strings.ToLower(str(colArch)),
		VCPU:                 num(colVCPU),
		MemoryMiB:            num(colMemory),
		GPUManufacturer:      strings.ToLower(str(colGPUMaker)),
		GPUName:              strings.ToLower(str(colGPUName)),
		GPUCount:             num(colGPUCount),
		GPUMemoryMiB:         num(colGPUMemory),
		AcceleratorResource:  str(colAccResource),
		AcceleratorCount:     num(colAccCount),
		EFACount:             num(colEFA),
		NetworkBandwidthMbps: num(colBandwidth),
		LocalNVMeGiB:         num(colNVMe),
		MaxPods:              num(colMaxPods),
	}
	if firstErr != nil {
		return Entry{}, firstErr
	}
	if e.Name == "" {
		return Entry{}, fmt.Errorf("%s: field %q: empty", at, colName)
	}
	if dot := strings.LastIndexByte(e.Name, '.'); dot >= 0 {
		e.Size = e.Name[dot+1:]
		if e.Family == "" {
			e.Family = e.Name[:dot] // AWS names are family.size
		}
	}
	for _, pc := range c.prices {
		s := strings.TrimSpace(rec[pc.index])
		if s == "" {
			continue // unknown price: absent, never 0
		}
		p, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
			return Entry{}, fmt.Errorf("%s: field %q: invalid price %q", at, pc.name, s)
		}
		if p <= 0 {
			// A zero price would make the type look free to consolidation.
			return Entry{}, fmt.Errorf("%s: field %q: price must be positive, got %q", at, pc.name, s)
		}
		if e.OnDemandPrices == nil {
			e.OnDemandPrices = map[string]float64{}
		}
		e.OnDemandPrices[pc.region] = p
	}
	return e, nil
}
