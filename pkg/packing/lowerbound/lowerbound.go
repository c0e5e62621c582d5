// Package lowerbound computes the fluid LP lower bound on the hourly price of
// any fleet that runs a batch of pods:
//
//	minimise   Σ_t price_t · x_t
//	subject to Σ_t y_{s,t} = n_s                           for every shape s
//	           Σ_s y_{s,t} · req_{s,r} ≤ alloc_{t,r} · x_t   for every type t, resource r
//	           x, y ≥ 0, y_{s,t} = 0 unless one pod of s fits an empty t
//
// Pods of a shape may be split across fractional instances, so no real
// packing (integral nodes, whole pods) can cost less. The LP is solved with
// gonum's simplex after dominated types are dropped; if the solver fails the
// weaker per-resource bound (also valid) is returned instead of an error.
package lowerbound

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
	corev1 "k8s.io/api/core/v1"
)

// Shape is Count pods with identical Requests.
type Shape struct {
	Requests corev1.ResourceList
	Count    int
}

// Type is a launchable instance type: what pods may use of it (allocatable
// minus daemon overhead) and its hourly price.
type Type struct {
	Name        string
	Allocatable corev1.ResourceList
	Price       float64
}

// Method says how a Result was obtained.
type Method string

const (
	MethodEmpty    Method = "empty"    // nothing to place
	MethodLP       Method = "lp"       // simplex optimum
	MethodFallback Method = "fallback" // per-resource bound after a solver failure
)

// Result is a lower bound.
type Result struct {
	Cost   float64
	Method Method
	// Unschedulable lists shapes (by index) that no type fits; they are
	// excluded from the bound.
	Unschedulable []int
	// SolverErr is the simplex error when Method is MethodFallback.
	SolverErr error
	// Instances is the fractional number of instances per type name in the
	// LP optimum (nil for the fallback).
	Instances map[string]float64
}

// Options tune Bound.
type Options struct {
	// Compatible further restricts which types a shape may use (node
	// requirements); nil means any type the shape fits.
	Compatible func(shape, typ int) bool
	// Tolerance is passed to the simplex; 0 means 1e-9.
	Tolerance float64
}

// Bound returns the fluid LP lower bound for shapes over types.
func Bound(shapes []Shape, types []Type, opts Options) Result {
	m := build(shapes, types, opts)
	res := Result{Method: MethodEmpty, Unschedulable: m.unschedulable}
	if len(m.shapes) == 0 {
		return res
	}
	fb := m.fallback()
	cost, inst, err := m.solveRobust(opts.Tolerance)
	switch {
	case err != nil:
		res.Cost, res.Method, res.SolverErr = fb, MethodFallback, err
	case cost < fb*(1-1e-7)-1e-9:
		// The LP optimum can never be below the per-resource bound; if it
		// is, the solver went wrong numerically.
		res.Cost, res.Method = fb, MethodFallback
		res.SolverErr = fmt.Errorf("simplex optimum %.6f below the per-resource bound %.6f", cost, fb)
	default:
		res.Cost, res.Method, res.Instances = cost, MethodLP, inst
	}
	return res
}

// model is the reduced problem: shapes that need placing, the types that
// may matter, resources scaled to O(1).
type model struct {
	res           []corev1.ResourceName
	shapes        []int       // indices of the input shapes in the LP
	count         []float64   // per LP shape
	req           [][]float64 // LP shape × resource (scaled)
	types         []int       // indices of the input types in the LP
	names         []string
	price         []float64
	alloc         [][]float64 // LP type × resource (scaled)
	fits          [][]bool    // LP shape × LP type
	unschedulable []int
}

func build(shapes []Shape, types []Type, opts Options) *model {
	m := &model{}
	idx := map[corev1.ResourceName]int{}
	for _, s := range shapes {
		if s.Count <= 0 {
			continue
		}
		for name, q := range s.Requests {
			if q.Sign() > 0 && Modelled(name) {
				if _, ok := idx[name]; !ok {
					idx[name] = len(m.res)
					m.res = append(m.res, name)
				}
			}
		}
	}
	sort.Slice(m.res, func(i, j int) bool { return m.res[i] < m.res[j] })
	for i, name := range m.res {
		idx[name] = i
	}
	vec := func(rl corev1.ResourceList) []float64 {
		v := make([]float64, len(m.res))
		for name, q := range rl {
			if i, ok := idx[name]; ok {
				v[i] = math.Max(q.AsApproximateFloat64(), 0)
			}
		}
		return v
	}
	// Candidate types: a valid positive price, deduplicated by name.
	var tIdx []int
	var tAlloc [][]float64
	seen := map[string]bool{}
	for t, ty := range types {
		if !(ty.Price > 0) || math.IsInf(ty.Price, 0) || seen[ty.Name] {
			continue
		}
		seen[ty.Name] = true
		tIdx = append(tIdx, t)
		tAlloc = append(tAlloc, vec(ty.Allocatable))
	}
	fits := func(s int, req []float64, k int) bool {
		for r := range req {
			if req[r] > tAlloc[k][r] {
				return false
			}
		}
		return opts.Compatible == nil || opts.Compatible(s, tIdx[k])
	}
	// Shapes: drop empty ones, report unschedulable ones, merge duplicates.
	var sFits [][]bool
	merged := map[string]int{}
	for s, sh := range shapes {
		if sh.Count <= 0 {
			continue
		}
		req := vec(sh.Requests)
		zero := true
		for _, q := range req {
			if q > 0 {
				zero = false
			}
		}
		f := make([]bool, len(tIdx))
		any := false
		for k := range tIdx {
			f[k] = fits(s, req, k)
			any = any || f[k]
		}
		if !any {
			m.unschedulable = append(m.unschedulable, s)
			continue
		}
		if zero {
			continue // costs nothing in the fluid relaxation
		}
		// Identical shapes (over the modelled resources) share one row.
		key := fmt.Sprint(req, f)
		if j, ok := merged[key]; ok {
			m.count[j] += float64(sh.Count)
			continue
		}
		merged[key] = len(m.shapes)
		m.shapes = append(m.shapes, s)
		m.count = append(m.count, float64(sh.Count))
		m.req = append(m.req, req)
		sFits = append(sFits, f)
	}
	// Types: keep those that fit some shape and are not dominated (another
	// type at most as expensive, at least as large in every resource and
	// usable by every shape this one is).
	keep := make([]bool, len(tIdx))
	for k := range tIdx {
		for s := range m.shapes {
			if sFits[s][k] {
				keep[k] = true
				break
			}
		}
	}
	dominates := func(a, b int) bool { // a dominates b
		if types[tIdx[a]].Price > types[tIdx[b]].Price {
			return false
		}
		for r := range m.res {
			if tAlloc[a][r] < tAlloc[b][r] {
				return false
			}
		}
		for s := range m.shapes {
			if sFits[s][b] && !sFits[s][a] {
				return false
			}
		}
		return true
	}
	for b := range tIdx {
		if !keep[b] {
			continue
		}
		for a := range tIdx {
			if a == b || !keep[a] || !dominates(a, b) {
				continue
			}
			// On exact ties keep the earlier one.
			if dominates(b, a) && b < a {
				continue
			}
			keep[b] = false
			break
		}
	}
	// Scale each resource by the largest allocatable among kept types.
	scale := make([]float64, len(m.res))
	for k := range tIdx {
		if keep[k] {
			for r := range m.res {
				scale[r] = math.Max(scale[r], tAlloc[k][r])
			}
		}
	}
	for r := range scale {
		if scale[r] == 0 {
			scale[r] = 1
		}
	}
	for s := range m.req {
		for r := range m.req[s] {
			m.req[s][r] /= scale[r]
		}
	}
	for k := range tIdx {
		if !keep[k] {
			continue
		}
		a := make([]float64, len(m.res))
		for r := range a {
			a[r] = tAlloc[k][r] / scale[r]
		}
		m.types = append(m.types, tIdx[k])
		m.names = append(m.names, types[tIdx[k]].Name)
		m.price = append(m.price, types[tIdx[k]].Price)
		m.alloc = append(m.alloc, a)
	}
	m.fits = make([][]bool, len(m.shapes))
	for s := range m.shapes {
		m.fits[s] = make([]bool, 0, len(m.types))
		for k := range tIdx {
			if keep[k] {
				m.fits[s] = append(m.fits[s], sFits[s][k])
			}
		}
	}
	return m
}

// Modelled reports the resources the LP constrains: CPU, memory and
// extended resources (GPUs, accelerators). Pod slots and ephemeral storage
// are left out: dropping constraints relaxes the LP, so the bound stays
// valid, and the LP stays small.
func Modelled(name corev1.ResourceName) bool {
	return name != corev1.ResourcePods && name != corev1.ResourceEphemeralStorage && name != corev1.ResourceStorage
}

// fallback is max over resources r of Σ_s n_s·req_{s,r}·min_{t fits s}
// price_t/alloc_{t,r}: every unit of r a pod uses sits on some type that
// fits it, paying at least that type's price per unit of r.
func (m *model) fallback() float64 {
	best := 0.0
	for r := range m.res {
		sum := 0.0
		for s := range m.shapes {
			if m.req[s][r] == 0 {
				continue
			}
			per := math.Inf(1)
			for k := range m.types {
				if m.fits[s][k] && m.alloc[k][r] > 0 {
					per = math.Min(per, m.price[k]/m.alloc[k][r])
				}
			}
			if !math.IsInf(per, 1) {
				sum += m.count[s] * m.req[s][r] * per
			}
		}
		best = math.Max(best, sum)
	}
	return best
}

// solveRobust tries the simplex on a few orderings of the same LP: gonum's
// dense simplex can stop on a (near-)singular basis or a failed Bland step
// for one column order and succeed for another. The optimum does not depend
// on the order.
func (m *model) solveRobust(tol float64) (float64, map[string]float64, error) {
	S, T := len(m.shapes), len(m.types)
	identity := func(n int) []int {
		o := make([]int, n)
		for i := range o {
			o[i] = i
		}
		return o
	}
	reverse := func(o []int) []int {
		r := make([]int, len(o))
		for i := range o {
			r[i] = o[len(o)-1-i]
		}
		return r
	}
	byPrice := identity(T)
	sort.SliceStable(byPrice, func(a, b int) bool { return m.price[byPrice[a]] < m.price[byPrice[b]] })
	bySize := identity(S)
	sort.SliceStable(bySize, func(a, b int) bool {
		for r := range m.res {
			if m.req[bySize[a]][r] != m.req[bySize[b]][r] {
				return m.req[bySize[a]][r] > m.req[bySize[b]][r]
			}
		}
		return false
	})
	orders := [][2][]int{
		{identity(S), identity(T)},
		{bySize, byPrice},
		{reverse(bySize), reverse(byPrice)},
		{bySize, reverse(byPrice)},
		{reverse(identity(S)), reverse(identity(T))},
	}
	var errs []error
	for _, o := range orders {
		cost, inst, err := m.permute(o[0], o[1]).solve(tol)
		if err == nil {
			return cost, inst, nil
		}
		errs = append(errs, err)
	}
	return 0, nil, errors.Join(errs...)
}

// permute returns the model with shapes and types reordered.
func (m *model) permute(shapes, types []int) *model {
	p := &model{res: m.res, unschedulable: m.unschedulable}
	for _, s := range shapes {
		p.shapes = append(p.shapes, m.shapes[s])
		p.count = append(p.count, m.count[s])
		p.req = append(p.req, m.req[s])
		row := make([]bool, len(types))
		for j, t := range types {
			row[j] = m.fits[s][t]
		}
		p.fits = append(p.fits, row)
	}
	for _, t := range types {
		p.types = append(p.types, m.types[t])
		p.names = append(p.names, m.names[t])
		p.price = append(p.price, m.price[t])
		p.alloc = append(p.alloc, m.alloc[t])
	}
	return p
}

// solve builds the standard form and runs the simplex.
//
// Columns: x_t, then y_{s,t} for every fitting pair, then one slack per
// capacity row. Rows: one equality per shape, then one per (type, resource)
// that some fitting shape requests:
//
//	Σ_s req_{s,r}·y_{s,t} − alloc_{t,r}·x_t + slack_{t,r} = 0.
func (m *model) solve(tol float64) (cost float64, inst map[string]float64, err error) {
	defer func() {
		if r := recover(); r != nil { // the solver panics on shape errors; never let that escape
			err = fmt.Errorf("simplex panicked: %v", r)
		}
	}()
	if tol <= 0 {
		tol = 1e-9
	}
	S, T, R := len(m.shapes), len(m.types), len(m.res)
	type cell struct{ s, t int }
	var pairs []cell
	for s := 0; s < S; s++ {
		for t := 0; t < T; t++ {
			if m.fits[s][t] {
				pairs = append(pairs, cell{s, t})
			}
		}
	}
	type capRow struct{ t, r int }
	var rows []capRow
	for t := 0; t < T; t++ {
		for r := 0; r < R; r++ {
			for s := 0; s < S; s++ {
				if m.fits[s][t] && m.req[s][r] > 0 {
					rows = append(rows, capRow{t, r})
					break
				}
			}
		}
	}
	nRows := S + len(rows)
	nCols := T + len(pairs) + len(rows)
	A := mat.NewDense(nRows, nCols, nil)
	c := make([]float64, nCols)
	b := make([]float64, nRows)
	for t := 0; t < T; t++ {
		c[t] = m.price[t]
	}
	rowOf := map[capRow]int{}
	for i, cr := range rows {
		rowOf[cr] = S + i
		A.Set(S+i, T+len(pairs)+i, 1) // slack
		A.Set(S+i, cr.t, -m.alloc[cr.t][cr.r])
	}
	for j, pr := range pairs {
		col := T + j
		A.Set(pr.s, col, 1)
		for r := 0; r < R; r++ {
			if q := m.req[pr.s][r]; q > 0 {
				A.Set(rowOf[capRow{pr.t, r}], col, q)
			}
		}
	}
	for s := 0; s < S; s++ {
		b[s] = m.count[s]
	}
	// A type column without any capacity row cannot occur (every kept type
	// fits a shape with a positive request), but guard the solver's
	// zero-column check anyway.
	for t := 0; t < T; t++ {
		zero := true
		for i := S; i < nRows; i++ {
			if A.At(i, t) != 0 {
				zero = false
				break
			}
		}
		if zero {
			return 0, nil, errors.New("type without capacity rows")
		}
	}
	pairIdx := map[cell]int{}
	for j, pr := range pairs {
		pairIdx[pr] = j
	}
	basis := m.initialBasis(func(s, t int) int { return T + pairIdx[cell{s, t}] }, func(t, r int) int {
		i, ok := rowOf[capRow{t, r}]
		if !ok {
			return -1
		}
		return T + len(pairs) + (i - S)
	})
	opt, x, err := lp.Simplex(c, A, b, tol, basis)
	if err != nil && basis != nil {
		// Start over with the solver's own phase I.
		opt, x, err = lp.Simplex(c, A, b, tol, nil)
	}
	if err != nil {
		return 0, nil, err
	}
	if math.IsNaN(opt) || math.IsInf(opt, 0) {
		return 0, nil, fmt.Errorf("simplex returned %v", opt)
	}
	// Check the primal solution: a bound built on an infeasible point is
	// worthless.
	for i := 0; i < nRows; i++ {
		sum := 0.0
		for j := 0; j < nCols; j++ {
			if v := A.At(i, j); v != 0 {
				sum += v * x[j]
			}
		}
		if math.Abs(sum-b[i]) > 1e-6*math.Max(1, math.Abs(b[i])) {
			return 0, nil, fmt.Errorf("simplex solution violates row %d by %g", i, sum-b[i])
		}
	}
	inst = map[string]float64{}
	for t := 0; t < T; t++ {
		if x[t] > 1e-9 {
			inst[m.names[t]] = x[t]
		}
	}
	return opt, inst, nil
}

// initialBasis builds a feasible basis so the simplex skips its phase I
// (whose basis search is the slow part): every shape entirely on the type
// that holds it most cheaply, each used type sized by its binding
// resource. Basic columns: those y_{s,t}, x_t of each used type in place of
// the slack of its binding row, and every other slack. The basis matrix is
// triangular up to a permutation with non-zero pivots (alloc > 0 on the
// binding row), hence non-singular. It returns nil when it cannot build one.
func (m *model) initialBasis(yCol func(s, t int) int, slackCol func(t, r int) int) []int {
	S, T, R := len(m.shapes), len(m.types), len(m.res)
	load := make([][]float64, T)
	for t := range load {
		load[t] = make([]float64, R)
	}
	var basis []int
	for s := 0; s < S; s++ {
		best, bestCost := -1, math.Inf(1)
		for t := 0; t < T; t++ {
			if !m.fits[s][t] {
				continue
			}
			need := 0.0
			for r := 0; r < R; r++ {
				if m.req[s][r] > 0 {
					need = math.Max(need, m.req[s][r]/m.alloc[t][r])
				}
			}
			if cost := m.price[t] * need; cost < bestCost {
				best, bestCost = t, cost
			}
		}
		if best < 0 {
			return nil
		}
		for r := 0; r < R; r++ {
			load[best][r] += m.count[s] * m.req[s][r]
		}
		basis = append(basis, yCol(s, best))
	}
	for t := 0; t < T; t++ {
		binding, ratio := -1, 0.0
		for r := 0; r < R; r++ {
			if load[t][r] > 0 && load[t][r]/m.alloc[t][r] > ratio {
				binding, ratio = r, load[t][r]/m.alloc[t][r]
			}
		}
		for r := 0; r < R; r++ {
			col := slackCol(t, r)
			if col < 0 {
				continue
			}
			if r == binding {
				col = t // x_t replaces the binding row's slack
			}
			basis = append(basis, col)
		}
	}
	return basis
}
