package explain

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/gbdt"
)

// TreeSHAP is the exact SHAP value of every input for every row, in margin
// space, with the path-dependent conditional expectation (node covers
// weigh the branches a missing coalition member could take). values[r]
// holds outputs*inputs numbers: the value of input j for output c is
// values[r][c*len(inputs)+j]; there is one output for binary (the
// positive class's log-odds) and regression, one per class for
// multiclass. base[c] is the expected margin of output c, so for every
// row and output the values plus base sum to the model's raw margin.
// Missing values and categories follow the model's own routing.
func TreeSHAP(m *gbdt.Model, rows []model.Row) (values [][]float64, base []float64, err error) {
	e := newExplainer(m)
	values = make([][]float64, len(rows))
	errs := make([]error, len(rows))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(rows)) {
		wg.Go(func() {
			x := make([]float64, len(e.features))
			path := make([]pathElem, e.pathLen)
			for {
				r := int(next.Add(1)) - 1
				if r >= len(rows) {
					return
				}
				if err := e.encode(rows[r], x); err != nil {
					errs[r] = fmt.Errorf("tree shap: row %d: %w", r, err)
					continue
				}
				values[r] = e.shap(x, path)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return values, e.base, nil
}

// MeanAbsSHAP is, per input, the mean over rows of |SHAP| (summed over
// classes for multiclass) and its standard deviation, most important first.
func MeanAbsSHAP(m *gbdt.Model, rows []model.Row) ([]Importance, error) {
	values, base, err := TreeSHAP(m, rows)
	if err != nil {
		return nil, err
	}
	features := m.File().Features
	nf, k := len(features), len(base)
	out := make([]Importance, nf)
	abs := make([]float64, len(values))
	for j, f := range features {
		for r, v := range values {
			abs[r] = 0
			for c := range k {
				abs[r] += math.Abs(v[c*nf+j])
			}
		}
		out[j] = Importance{Feature: f.Name}
		if len(abs) > 0 {
			out[j].Mean, out[j].Std = meanStd(abs)
		}
	}
	sortByMean(out)
	return out, nil
}

// explainer is a model's trees with what TreeSHAP needs per node.
type explainer struct {
	features []gbdt.Feature
	catIndex []map[string]int
	trees    []shapTree
	base     []float64
	pathLen  int // path buffer a row's walk needs, for the deepest tree
}

type shapTree struct {
	nodes []gbdt.Node
	// leftShare is the share of a node's cover that went left: the weight
	// of the left branch when the node's input is not in the coalition.
	leftShare []float64
	cats      []map[int]bool // categorical splits: codes that go left
}

func newExplainer(m *gbdt.Model) *explainer {
	f := m.File()
	e := &explainer{features: f.Features, catIndex: make([]map[string]int, len(f.Features))}
	for j, ft := range f.Features {
		if ft.Kind == model.Categorical {
			e.catIndex[j] = make(map[string]int, len(ft.Categories))
			for c, s := range ft.Categories {
				e.catIndex[j][s] = c
			}
		}
	}
	e.base = append([]float64(nil), f.BaseScore...)
	depth := 0
	for i, t := range f.Trees {
		st := shapTree{nodes: t.Nodes, leftShare: make([]float64, len(t.Nodes)), cats: make([]map[int]bool, len(t.Nodes))}
		for n := range t.Nodes {
			nd := &t.Nodes[n]
			if nd.Left == 0 {
				continue
			}
			st.leftShare[n] = share(t.Nodes[nd.Left].Cover, t.Nodes[nd.Right].Cover)
			if f.Features[nd.Feature].Kind == model.Categorical {
				st.cats[n] = make(map[int]bool, len(nd.Categories))
				for _, c := range nd.Categories {
					st.cats[n][c] = true
				}
			}
		}
		e.base[i%len(e.base)] += st.expected(0)
		depth = max(depth, st.depth(0))
		e.trees = append(e.trees, st)
	}
	// Each level of the walk copies its parent's path, one longer.
	e.pathLen = (depth + 2) * (depth + 3) / 2
	return e
}

// share is the left child's part of the two covers; the children's sum,
// not the parent's cover, so the two shares always add to one.
func share(left, right float64) float64 {
	s := left / (left + right)
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0.5
	}
	return s
}

func (t *shapTree) expected(n int) float64 {
	nd := &t.nodes[n]
	if nd.Left == 0 {
		return nd.Value
	}
	return t.leftShare[n]*t.expected(nd.Left) + (1-t.leftShare[n])*t.expected(nd.Right)
}

func (t *shapTree) depth(n int) int {
	nd := &t.nodes[n]
	if nd.Left == 0 {
		return 0
	}
	return 1 + max(t.depth(nd.Left), t.depth(nd.Right))
}

// encode reads a row as the model does: numbers (clamped to finite),
// category codes, NaN for missing and unknown categories.
func (e *explainer) encode(row model.Row, x []float64) error {
	if len(row) != len(e.features) {
		return fmt.Errorf("%d values for %d inputs: %w", len(row), len(e.features), model.ErrInput)
	}
	for j, v := range row {
		switch {
		case v.Null:
			x[j] = math.NaN()
		case e.features[j].Kind == model.Categorical:
			c, ok := e.catIndex[j][v.S]
			x[j] = float64(c)
			if !ok {
				x[j] = math.NaN()
			}
		default:
			// NaN stays NaN: min and max keep it.
			x[j] = max(-math.MaxFloat64, min(v.F, math.MaxFloat64))
		}
	}
	return nil
}

// goesLeft is the model's routing of x at node n.
func (t *shapTree) goesLeft(n int, x []float64) bool {
	nd := &t.nodes[n]
	v := x[nd.Feature]
	switch {
	case math.IsNaN(v):
		return nd.DefaultLeft
	case t.cats[n] != nil:
		return t.cats[n][int(v)]
	}
	return v <= nd.Threshold
}

func (e *explainer) shap(x []float64, path []pathElem) []float64 {
	nf, k := len(e.features), len(e.base)
	phi := make([]float64, nf*k)
	for i := range e.trees {
		c := i % k
		e.trees[i].walk(x, phi[c*nf:(c+1)*nf], 0, path, 0, 1, 1, -1)
	}
	return phi
}

// pathElem is one input on the path from the root: the share of
// coalitions without it (zero) and with it (one) that reach here, and the
// running permutation weight of subsets of the path.
type pathElem struct {
	feature   int
	zero, one float64
	weight    float64
}

// walk is Algorithm 2's RECURSE. parent holds the path so far in
// parent[:depth]; this node's path lives after it, so siblings reuse the
// same space and the parent's path stays intact.
func (t *shapTree) walk(x, phi []float64, n int, parent []pathElem, depth int, zero, one float64, feature int) {
	path := parent[depth+1:]
	copy(path[:depth], parent[:depth])
	extend(path, depth, zero, one, feature)
	nd := &t.nodes[n]
	if nd.Left == 0 {
		for i := 1; i <= depth; i++ {
			el := path[i]
			phi[el.feature] += unwoundSum(path, depth, i) * (el.one - el.zero) * nd.Value
		}
		return
	}
	hot, cold, hotShare := nd.Right, nd.Left, 1-t.leftShare[n]
	if t.goesLeft(n, x) {
		hot, cold, hotShare = nd.Left, nd.Right, t.leftShare[n]
	}
	// A feature met again: undo its first split, the two combine into one.
	inZero, inOne := 1.0, 1.0
	for i := 1; i <= depth; i++ {
		if path[i].feature == nd.Feature {
			inZero, inOne = path[i].zero, path[i].one
			unwind(path, depth, i)
			depth--
			break
		}
	}
	// A branch no coalition reaches adds nothing (and would divide by zero).
	if z := hotShare * inZero; z != 0 || inOne != 0 {
		t.walk(x, phi, hot, path, depth+1, z, inOne, nd.Feature)
	}
	if z := (1 - hotShare) * inZero; z != 0 {
		t.walk(x, phi, cold, path, depth+1, z, 0, nd.Feature)
	}
}

func extend(path []pathElem, depth int, zero, one float64, feature int) {
	path[depth] = pathElem{feature: feature, zero: zero, one: one}
	if depth == 0 {
		path[0].weight = 1
	}
	d := float64(depth + 1)
	for i := depth - 1; i >= 0; i-- {
		path[i+1].weight += one * path[i].weight * float64(i+1) / d
		path[i].weight = zero * path[i].weight * float64(depth-i) / d
	}
}

func unwind(path []pathElem, depth, at int) {
	one, zero := path[at].one, path[at].zero
	next := path[depth].weight
	d := float64(depth + 1)
	for i := depth - 1; i >= 0; i-- {
		if one != 0 {
			w := path[i].weight
			path[i].weight = next * d / (float64(i+1) * one)
			next = w - path[i].weight*zero*float64(depth-i)/d
		} else {
			path[i].weight = path[i].weight * d / (zero * float64(depth-i))
		}
	}
	for i := at; i < depth; i++ {
		path[i].feature, path[i].zero, path[i].one = path[i+1].feature, path[i+1].zero, path[i+1].one
	}
}

// unwoundSum is the total permutation weight of the path with element at
// removed, without changing the path.
func unwoundSum(path []pathElem, depth, at int) float64 {
	one, zero := path[at].one, path[at].zero
	next := path[depth].weight
	d := float64(depth + 1)
	var total float64
	for i := depth - 1; i >= 0; i-- {
		if one != 0 {
			w := next * d / (float64(i+1) * one)
			total += w
			next = path[i].weight - w*zero*float64(depth-i)/d
		} else {
			total += path[i].weight / zero * d / float64(depth-i)
		}
	}
	return total
}
