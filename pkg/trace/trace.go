// Package trace reads the pod lists of the Alibaba GPU cluster trace v2023
// (cluster-trace-gpu-v2023) and answers the two questions the benchmarks and
// the simulator ask of them: which pods are alive at a moment, and which
// moments are the busiest.
//
// The parser is driven by the header row, so it reads both the full
// "default" list (with creation and deletion times) and the static
// "multigpu50" list (five columns, no times: every pod arrives at t=0 and
// never leaves).
package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Forever is the deletion time of a pod that never leaves: pods of a list
// without times, and pods whose deletion_time is empty.
const Forever = time.Duration(math.MaxInt64)

// Pod is one row of a pod list.
type Pod struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	// GPUs is num_gpu: whole GPUs asked for (0 to 8 in the trace).
	GPUs int64
	// GPUMilli is gpu_milli: the share of each GPU used; below 1000 the pod
	// shares one GPU, which on a cluster without GPU sharing still takes a
	// whole nvidia.com/gpu.
	GPUMilli int64
	// GPUSpec lists the allowed GPU models (gpu_spec split on "|"); empty
	// means any model.
	GPUSpec []string
	QoS     string
	Phase   string
	// Created and Deleted bound the pod's life, [Created, Deleted). For a
	// list without times Created is 0 and Deleted is Forever.
	Created, Deleted time.Duration
	// HasTimes reports whether the row carried a creation time.
	HasTimes bool
	// Line is the 1-based line of the row in its source.
	Line int
}

// IsGPU reports whether the pod asks for at least one GPU.
func (p *Pod) IsGPU() bool { return p.GPUs > 0 }

// Column names the parser knows.
const (
	ColName          = "name"
	ColCPUMilli      = "cpu_milli"
	ColMemoryMiB     = "memory_mib"
	ColNumGPU        = "num_gpu"
	ColGPUMilli      = "gpu_milli"
	ColGPUSpec       = "gpu_spec"
	ColQoS           = "qos"
	ColPodPhase      = "pod_phase"
	ColCreationTime  = "creation_time"
	ColDeletionTime  = "deletion_time"
	ColScheduledTime = "scheduled_time"
)

var requiredColumns = []string{ColName, ColCPUMilli, ColMemoryMiB, ColNumGPU, ColGPUMilli}

var knownColumns = map[string]bool{
	ColName: true, ColCPUMilli: true, ColMemoryMiB: true, ColNumGPU: true, ColGPUMilli: true,
	ColGPUSpec: true, ColQoS: true, ColPodPhase: true,
	ColCreationTime: true, ColDeletionTime: true, ColScheduledTime: true,
}

// maxSeconds keeps a time in seconds representable as a time.Duration.
const maxSeconds = float64(math.MaxInt64/int64(time.Second)) - 1

// Parse reads a pod list. source names the input in errors, which have the
// form `source:line: field "x": ...`. An unknown or duplicate column, a
// missing required column, a malformed or negative number, a row of the
// wrong width and a deletion before creation are errors.
func Parse(r io.Reader, source string) ([]Pod, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:1: empty input, want a header row", source)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		if !knownColumns[h] {
			return nil, fmt.Errorf("%s:1: field %q: unknown column", source, h)
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("%s:1: field %q: duplicate column", source, h)
		}
		col[h] = i
	}
	for _, c := range requiredColumns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("%s:1: field %q: required column missing", source, c)
		}
	}
	_, hasCreation := col[ColCreationTime]
	_, hasDeletion := col[ColDeletionTime]
	if hasDeletion && !hasCreation {
		return nil, fmt.Errorf("%s:1: field %q: deletion_time without creation_time", source, ColCreationTime)
	}

	var pods []Pod
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: %w", source, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		// FieldPos is only valid after a successful Read.
		line, _ := cr.FieldPos(0)
		p, err := parseRow(rec, col, line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, line, err)
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func parseRow(rec []string, col map[string]int, line int) (Pod, error) {
	get := func(name string) (string, bool) {
		i, ok := col[name]
		if !ok {
			return "", false
		}
		return strings.TrimSpace(rec[i]), true
	}
	p := Pod{Line: line, Deleted: Forever}
	p.Name, _ = get(ColName)
	if p.Name == "" {
		return p, fmt.Errorf("field %q: empty", ColName)
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{ColCPUMilli, &p.CPUMilli}, {ColMemoryMiB, &p.MemoryMiB}, {ColNumGPU, &p.GPUs}, {ColGPUMilli, &p.GPUMilli}} {
		v, _ := get(f.name)
		n, err := parseCount(v)
		if err != nil {
			return p, fmt.Errorf("field %q: %w", f.name, err)
		}
		*f.dst = n
	}
	if v, ok := get(ColGPUSpec); ok && v != "" {
		for _, s := range strings.Split(v, "|") {
			if s = strings.TrimSpace(s); s != "" {
				p.GPUSpec = append(p.GPUSpec, s)
			}
		}
	}
	p.QoS, _ = get(ColQoS)
	p.Phase, _ = get(ColPodPhase)

	if v, ok := get(ColCreationTime); ok {
		if v == "" {
			return p, fmt.Errorf("field %q: empty", ColCreationTime)
		}
		c, err := parseSeconds(v)
		if err != nil {
			return p, fmt.Errorf("field %q: %w", ColCreationTime, err)
		}
		p.Created, p.HasTimes = c, true
	}
	if v, ok := get(ColDeletionTime); ok && v != "" {
		d, err := parseSeconds(v)
		if err != nil {
			return p, fmt.Errorf("field %q: %w", ColDeletionTime, err)
		}
		if d < p.Created {
			return p, fmt.Errorf("field %q: negative duration: deleted at %s before created at %s", ColDeletionTime, v, fmtSeconds(p.Created))
		}
		p.Deleted = d
	}
	if v, ok := get(ColScheduledTime); ok && v != "" {
		// Only validated: a replay decides scheduling itself.
		if _, err := parseSeconds(v); err != nil {
			return p, fmt.Errorf("field %q: %w", ColScheduledTime, err)
		}
	}
	return p, nil
}

func parseCount(v string) (int64, error) {
	if v == "" {
		return 0, errors.New("empty, want a non-negative integer")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed integer %q", v)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative value %d", n)
	}
	return n, nil
}

// parseSeconds reads a non-negative time in seconds (integer or decimal).
func parseSeconds(v string) (time.Duration, error) {
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(s) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("malformed time %q, want seconds", v)
	}
	if s < 0 {
		return 0, fmt.Errorf("negative time %q", v)
	}
	if s > maxSeconds {
		return 0, fmt.Errorf("time %q out of range", v)
	}
	return time.Duration(math.Round(s * float64(time.Second))), nil
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// AliveAt returns the pods alive at t, that is with Created <= t < Deleted,
// in input order.
func AliveAt(pods []Pod, t time.Duration) []Pod {
	var out []Pod
	for i := range pods {
		if pods[i].Created <= t && t < pods[i].Deleted {
			out = append(out, pods[i])
		}
	}
	return out
}

// GPUPods returns the pods that ask for at least one GPU, in input order.
func GPUPods(pods []Pod) []Pod {
	var out []Pod
	for i := range pods {
		if pods[i].IsGPU() {
			out = append(out, pods[i])
		}
	}
	return out
}

// BusiestMoments returns up to n distinct moments with the most GPU pods
// alive, busiest first (earlier first on ties).
//
// Only peaks are candidates: a moment after whose arrivals the next event is
// a departure (or that ends the trace). A moment in the middle of a run of
// arrivals is never returned, because the peak that ends the run holds a
// superset of its pods; so no two returned moments are the same batch seen
// twice.
func BusiestMoments(pods []Pod, n int) []time.Duration {
	if n <= 0 {
		return nil
	}
	type event struct {
		at    time.Duration
		delta int
	}
	var events []event
	for i := range pods {
		p := &pods[i]
		if !p.IsGPU() || p.Deleted <= p.Created {
			continue
		}
		events = append(events, event{p.Created, +1})
		if p.Deleted != Forever {
			events = append(events, event{p.Deleted, -1})
		}
	}
	if len(events) == 0 {
		return nil
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at < events[j].at })

	type moment struct {
		at         time.Duration
		alive      int
		rose, fell bool
	}
	// Collapse events at one timestamp: departures and arrivals at the
	// same t net out, since lives are half-open [Created, Deleted).
	var steps []moment
	alive := 0
	for i := 0; i < len(events); {
		m := moment{at: events[i].at}
		for ; i < len(events) && events[i].at == m.at; i++ {
			alive += events[i].delta
			m.rose = m.rose || events[i].delta > 0
			m.fell = m.fell || events[i].delta < 0
		}
		m.alive = alive
		steps = append(steps, m)
	}
	var peaks []moment
	for i, s := range steps {
		if s.rose && (i+1 == len(steps) || steps[i+1].fell) {
			peaks = append(peaks, s)
		}
	}
	sort.SliceStable(peaks, func(i, j int) bool {
		if peaks[i].alive != peaks[j].alive {
			return peaks[i].alive > peaks[j].alive
		}
		return peaks[i].at < peaks[j].at
	})
	out := make([]time.Duration, 0, min(n, len(peaks)))
	for _, p := range peaks[:min(n, len(peaks))] {
		out = append(out, p.at)
	}
	return out
}
