package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// CSVHeader is the header of WriteCSV's output.
var CSVHeader = []string{"policy", "hours", "fleet_usd_per_hour", "gpus_paid", "gpus_allocated", "gpus_requested", "lower_bound_usd_per_hour"}

// WriteCSV writes each result's time series as rows: one per policy and
// moment any series changes, with every series' value from that moment on
// (step functions).
func WriteCSV(w io.Writer, results ...*Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, r := range results {
		if r.Series == nil {
			return fmt.Errorf("%s: the result has no time series", r.Policy)
		}
		all := [][]Point{r.Series.Cost, r.Series.GPUsPaid, r.Series.GPUsAllocated, r.Series.GPUsRequested, r.Series.LowerBound}
		seen := map[time.Duration]bool{0: true}
		times := []time.Duration{0}
		for _, s := range all {
			for _, p := range s {
				if !seen[p.T] {
					seen[p.T] = true
					times = append(times, p.T)
				}
			}
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		idx := make([]int, len(all))
		for _, t := range times {
			row := []string{r.Policy, strconv.FormatFloat(t.Hours(), 'f', 6, 64)}
			for k, s := range all {
				for idx[k] < len(s) && s[idx[k]].T <= t {
					idx[k]++
				}
				v := 0.0
				if idx[k] > 0 {
					v = s[idx[k]-1].V
				}
				row = append(row, strconv.FormatFloat(v, 'f', -1, 64))
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
