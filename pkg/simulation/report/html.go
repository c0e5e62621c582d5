package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// WriteHTML writes a self-contained HTML report: the summary table, and SVG
// charts of the fleet's hourly cost (with the lower bound) and of the GPUs
// paid for, allocated and requested over time, for each policy.
func WriteHTML(w io.Writer, results ...*Result) error {
	if len(results) == 0 {
		return fmt.Errorf("no results")
	}
	rows := tableRows(results...)
	end := time.Duration(results[0].SimulatedHours * float64(time.Hour))
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	var costLines []chartLine
	for i, r := range results {
		costLines = append(costLines, chartLine{Label: r.Policy + " fleet $/h", Color: colors[i%len(colors)], Points: r.Series.Cost})
	}
	costLines = append(costLines, chartLine{Label: "lower bound $/h", Color: "#555", Dashed: true, Points: results[0].Series.LowerBound})
	charts := []template.HTML{svgChart("Fleet cost ($/h)", end, costLines)}
	for i, r := range results {
		charts = append(charts, svgChart(fmt.Sprintf("GPUs: %s", r.Policy), end, []chartLine{
			{Label: "paid (on running instances)", Color: colors[i%len(colors)], Points: r.Series.GPUsPaid},
			{Label: "allocated (bound pods)", Color: "#ff7f0e", Points: r.Series.GPUsAllocated},
			{Label: "requested (pods alive in the input)", Color: "#555", Dashed: true, Points: r.Series.GPUsRequested},
		}))
	}
	method := ""
	if results[0].CostAllocation != nil {
		method = results[0].CostAllocation.Method
	}
	return htmlTemplate.Execute(w, struct {
		Input      string
		Header     []string
		Rows       [][]string
		Charts     []template.HTML
		Method     string
		Allocation []AllocationTable
		Notes      []string
	}{results[0].Input, rows[0], rows[1:], charts, method, allocationTables(results...), results[0].Notes})
}

var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>karpenter-gpu simulation</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse} th,td{padding:2px 10px;border-bottom:1px solid #eee} td{text-align:right;font-variant-numeric:tabular-nums} td:first-child,th:first-child{text-align:left} svg{margin:1em 0;border:1px solid #ddd}</style>
</head><body>
<h1>karpenter-gpu simulation</h1>
<p>Input: {{.Input}}</p>
<table>
<thead><tr>{{range .Header}}<th scope="col">{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range $i, $c := .}}{{if eq $i 0}}<th scope="row">{{$c}}</th>{{else}}<td>{{$c}}</td>{{end}}{{end}}</tr>
{{end}}</tbody>
</table>
{{range .Charts}}{{.}}{{end}}
{{if .Allocation}}<h2>Cost allocation</h2>
<p>{{.Method}}</p>
{{range .Allocation}}<h3>{{.Title}}</h3>
<table>
<thead><tr>{{range .Header}}<th scope="col">{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range $i, $c := .}}{{if eq $i 0}}<th scope="row">{{$c}}</th>{{else}}<td>{{$c}}</td>{{end}}{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}{{end}}{{range .Notes}}<p>Note: {{.}}</p>
{{end}}</body></html>
`))

type chartLine struct {
	Label  string
	Color  string
	Dashed bool
	Points []Point
}

// svgChart draws step functions over [0, end) as an SVG line chart.
func svgChart(title string, end time.Duration, lines []chartLine) template.HTML {
	const W, H, left, right, top, bottom = 1000.0, 320.0, 70.0, 20.0, 30.0, 60.0
	maxV := 0.0
	for _, l := range lines {
		for _, p := range l.Points {
			maxV = math.Max(maxV, p.V)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	maxV = niceCeil(maxV)
	if end <= 0 {
		end = time.Hour
	}
	x := func(t time.Duration) float64 { return left + (W-left-right)*math.Min(1, float64(t)/float64(end)) }
	y := func(v float64) float64 { return top + (H-top-bottom)*(1-v/maxV) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, W, H, W, H)
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="15" font-weight="bold">%s</text>`, left, template.HTMLEscapeString(title))
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`,
			left, W-right, y(v), y(v), left-6, y(v)+4, formatValue(v))
	}
	unit, unitName := time.Hour, "h"
	if end > 72*time.Hour {
		unit, unitName = 24*time.Hour, "days"
	}
	for i := 0; i <= 5; i++ {
		t := end * time.Duration(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%.1f</text>`, x(t), H-bottom+16, float64(t)/float64(unit))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">simulated time (%s)</text>`, (left+W-right)/2, H-bottom+32, unitName)
	for i, l := range lines {
		var pts strings.Builder
		prev := 0.0
		lastX := -1.0
		for _, p := range downsample(l.Points, end, 2000) {
			if p.T >= end {
				break
			}
			px := x(p.T)
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", px, y(prev), px, y(p.V))
			prev, lastX = p.V, px
		}
		if lastX >= 0 {
			fmt.Fprintf(&pts, "%.1f,%.1f", x(end), y(prev))
		}
		dash := ""
		if l.Dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.3"%s points="%s"/>`, l.Color, dash, pts.String())
		lx := left + float64(i)*230
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="3"%s/><text x="%.0f" y="%.0f" font-size="12">%s</text>`,
			lx, lx+20, H-10, H-10, l.Color, dash, lx+25, H-6, template.HTMLEscapeString(l.Label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped labels
}

// downsample keeps at most n points per line: within each of n time
// buckets, the last value and the bucket's maximum (so peaks stay visible).
func downsample(pts []Point, end time.Duration, n int) []Point {
	if len(pts) <= 2*n {
		return pts
	}
	bucket := end / time.Duration(n)
	var out []Point
	for i := 0; i < len(pts); {
		b := pts[i].T / bucket
		j := i
		peak := pts[i]
		for ; j < len(pts) && pts[j].T/bucket == b; j++ {
			if pts[j].V > peak.V {
				peak = pts[j]
			}
		}
		out = append(out, peak)
		if last := pts[j-1]; last != peak {
			out = append(out, last)
		}
		i = j
	}
	return out
}

func niceCeil(v float64) float64 {
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*exp >= v {
			return m * exp
		}
	}
	return 10 * exp
}

func formatValue(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
