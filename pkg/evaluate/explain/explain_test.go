package explain

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/gbdt"
)

// synth is n rows of: x0 (strong), x1 (some missing), cat (categorical,
// some missing), flat (constant, so no tree can split on it); target is a
// noisy sum of the first three.
func synth(n int, seed uint64) (cols []gbdt.Column, target []float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cols = []gbdt.Column{
		{Name: "x0", Kind: model.Numeric, F: make([]float64, n)},
		{Name: "x1", Kind: model.Numeric, F: make([]float64, n)},
		{Name: "cat", Kind: model.Categorical, S: make([]string, n)},
		{Name: "flat", Kind: model.Numeric, F: make([]float64, n)},
	}
	target = make([]float64, n)
	effect := map[string]float64{"a": -1, "b": 0.5, "c": 1, "d": -0.3, "": 0.2}
	for r := range n {
		x0, x1 := rng.NormFloat64(), rng.NormFloat64()
		cat := string(rune('a' + rng.IntN(4)))
		y := 2*x0 + effect[cat] + 0.3*rng.NormFloat64()
		if rng.Float64() < 0.2 {
			x1 = math.NaN()
		} else if x1 > 0 {
			y += 0.8
		}
		if rng.Float64() < 0.1 {
			cat = ""
		}
		cols[0].F[r], cols[1].F[r], cols[2].S[r], cols[3].F[r], target[r] = x0, x1, cat, 1.5, y
	}
	return cols, target
}

func rowsOf(cols []gbdt.Column) []model.Row {
	rows := make([]model.Row, len(cols[0].F))
	for r := range rows {
		rows[r] = make(model.Row, len(cols))
		for j, c := range cols {
			switch {
			case c.Kind == model.Categorical:
				rows[r][j] = model.Value{S: c.S[r], Null: c.S[r] == ""}
			default:
				rows[r][j] = model.Value{F: c.F[r], Null: math.IsNaN(c.F[r])}
			}
		}
	}
	return rows
}

// trained fits a model of task on synth data; labels are the target's
// sign (binary) or its tercile (multiclass).
func trained(t *testing.T, task model.Task, n, trees, depth int) (*gbdt.Model, []model.Row) {
	t.Helper()
	cols, target := synth(n, 1)
	spec := gbdt.Spec{Task: task, Params: gbdt.DefaultParams()}
	spec.Params.Trees, spec.Params.MaxDepth, spec.Params.LearningRate = trees, depth, 0.3
	y := make([]float64, n)
	for r, v := range target {
		switch task {
		case model.Regression:
			y[r] = v
		case model.Binary:
			spec.Classes = []string{"neg", "pos"}
			y[r] = float64(min(1, max(0, math.Ceil(v))))
		case model.Multiclass:
			spec.Classes = []string{"lo", "mid", "hi"}
			y[r] = float64(min(2, max(0, math.Floor(v/2+1))))
		}
	}
	m, err := gbdt.Train(t.Context(), spec, &gbdt.Dataset{Features: cols, Y: y}, nil)
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	return m, rowsOf(cols)
}

func TestPermutationImportanceFindsInformativeFeature(t *testing.T) {
	// More rows than one chunk, so the chunked copy is exercised.
	m, rows := trained(t, model.Regression, chunkRows+900, 30, 4)
	_, target := synth(len(rows), 1)
	negMSE := func(preds []model.Prediction) float64 {
		var s float64
		for i, p := range preds {
			s += (p.Value - target[i]) * (p.Value - target[i])
		}
		return -s / float64(len(preds))
	}
	imp, err := PermutationImportance(t.Context(), m, rows, negMSE, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp) != 4 || imp[0].Feature != "x0" {
		t.Fatalf("importances %+v, want x0 first of 4", imp)
	}
	// Shuffling x0 (coefficient 2, unit variance) costs about 2*2^2 in MSE.
	if imp[0].Mean < 5 || imp[0].Mean < 5*imp[1].Mean {
		t.Errorf("x0 importance %v against next %v: not dominant", imp[0].Mean, imp[1].Mean)
	}
	for _, im := range imp {
		if len(im.Scores) != 3 {
			t.Errorf("%s: %d scores, want 3", im.Feature, len(im.Scores))
		}
		if im.Feature == "flat" && (im.Mean != 0 || im.Std != 0) {
			t.Errorf("constant input has importance %v ± %v, want 0", im.Mean, im.Std)
		}
		if im.Feature == "x1" && im.Mean <= 0 {
			t.Errorf("x1 importance %v, want positive", im.Mean)
		}
	}

	again, err := PermutationImportance(t.Context(), m, rows, negMSE, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(imp, again) {
		t.Errorf("same seed, different importances:\n%+v\n%+v", imp, again)
	}
	other, err := PermutationImportance(t.Context(), m, rows, negMSE, 3, 43)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(imp, other) {
		t.Error("another seed gave the very same importances")
	}
}

func TestPermutationImportanceBadInput(t *testing.T) {
	m, rows := trained(t, model.Regression, 200, 3, 2)
	score := func([]model.Prediction) float64 { return 0 }
	if _, err := PermutationImportance(t.Context(), m, rows, score, 0, 1); err == nil {
		t.Error("0 repeats: no error")
	}
	rows[3] = rows[3][:2]
	if _, err := PermutationImportance(t.Context(), m, rows, score, 1, 1); err == nil {
		t.Error("short row: no error")
	}
}

// margins are the model's raw margins for a row, read back from its
// probabilities; multiclass margins only up to a constant, so relative to
// class 0.
func margins(t *testing.T, m *gbdt.Model, row model.Row) []float64 {
	t.Helper()
	p := make([]model.Prediction, 1)
	if err := m.Predict([]model.Row{row}, p); err != nil {
		t.Fatal(err)
	}
	switch m.Task() {
	case model.Binary:
		return []float64{math.Log(p[0].Probabilities[1]) - math.Log(p[0].Probabilities[0])}
	case model.Multiclass:
		out := make([]float64, len(p[0].Probabilities))
		for c, q := range p[0].Probabilities {
			out[c] = math.Log(q) - math.Log(p[0].Probabilities[0])
		}
		return out
	}
	return []float64{p[0].Value}
}

func TestTreeSHAPLocalAccuracy(t *testing.T) {
	for _, task := range []model.Task{model.Regression, model.Binary, model.Multiclass} {
		t.Run(string(task), func(t *testing.T) {
			m, rows := trained(t, task, 600, 20, 6)
			// Values the training never saw: unknown category, infinities.
			rows = append(rows,
				model.Row{{F: math.Inf(1)}, {F: math.Inf(-1)}, {S: "zzz"}, {F: 1.5}},
				model.Row{{Null: true}, {Null: true}, {Null: true}, {Null: true}})
			values, base, err := TreeSHAP(m, rows)
			if err != nil {
				t.Fatal(err)
			}
			nf := len(m.Inputs())
			if len(values) != len(rows) || len(base) != len(m.File().BaseScore) {
				t.Fatalf("%d rows of values and %d bases", len(values), len(base))
			}
			for r, row := range rows {
				want := margins(t, m, row)
				got := make([]float64, len(base))
				for c := range base {
					got[c] = base[c]
					for j := range nf {
						got[c] += values[r][c*nf+j]
					}
				}
				g0 := got[0]
				for c := range base {
					if task == model.Multiclass {
						got[c] -= g0
					}
					if math.Abs(got[c]-want[c]) > 1e-9 {
						t.Fatalf("row %d output %d: values+base %v, margin %v", r, c, got[c], want[c])
					}
				}
				for c := range base {
					if v := values[r][c*nf+3]; v != 0 {
						t.Fatalf("row %d: constant input has SHAP %v", r, v)
					}
				}
			}
			imp, err := MeanAbsSHAP(m, rows)
			if err != nil {
				t.Fatal(err)
			}
			if imp[0].Feature != "x0" || imp[3].Feature != "flat" || imp[3].Mean != 0 {
				t.Errorf("mean |SHAP| %+v: want x0 first and flat last at 0", imp)
			}
		})
	}
}

// bruteForce is every input's exact Shapley value for output c of the
// game v(S) = the trees' path-dependent expectation of x given x_S,
// enumerating all subsets.
func bruteForce(e *explainer, x []float64, c int) []float64 {
	nf, k := len(e.features), len(e.base)
	v := func(in uint) float64 {
		var s float64
		for i := c; i < len(e.trees); i += k {
			s += e.trees[i].conditional(0, x, in)
		}
		return s
	}
	fact := func(n int) float64 {
		f := 1.0
		for i := 2; i <= n; i++ {
			f *= float64(i)
		}
		return f
	}
	phi := make([]float64, nf)
	for j := range nf {
		for s := uint(0); s < 1<<nf; s++ {
			if s&(1<<j) != 0 {
				continue
			}
			size := 0
			for b := s; b != 0; b &= b - 1 {
				size++
			}
			w := fact(size) * fact(nf-size-1) / fact(nf)
			phi[j] += w * (v(s|1<<j) - v(s))
		}
	}
	return phi
}

// conditional follows x where the node's input is in the coalition and
// weighs both branches by cover where it is not.
func (t *shapTree) conditional(n int, x []float64, in uint) float64 {
	nd := &t.nodes[n]
	if nd.Left == 0 {
		return nd.Value
	}
	if in&(1<<nd.Feature) != 0 {
		if t.goesLeft(n, x) {
			return t.conditional(nd.Left, x, in)
		}
		return t.conditional(nd.Right, x, in)
	}
	return t.leftShare[n]*t.conditional(nd.Left, x, in) + (1-t.leftShare[n])*t.conditional(nd.Right, x, in)
}

func checkBruteForce(t *testing.T, m *gbdt.Model, rows []model.Row) {
	t.Helper()
	values, _, err := TreeSHAP(m, rows)
	if err != nil {
		t.Fatal(err)
	}
	e := newExplainer(m)
	nf := len(e.features)
	x := make([]float64, nf)
	for r, row := range rows {
		if err := e.encode(row, x); err != nil {
			t.Fatal(err)
		}
		for c := range e.base {
			want := bruteForce(e, x, c)
			for j := range nf {
				if got := values[r][c*nf+j]; math.Abs(got-want[j]) > 1e-9 {
					t.Fatalf("row %d output %d input %d: TreeSHAP %v, brute force %v", r, c, j, got, want[j])
				}
			}
		}
	}
}

// smallTree splits on a twice on one path (so TreeSHAP must undo a split),
// on the categorical b with missing going left, and on c; input unused
// appears in no split.
const smallTree = `{
 "format": "gyre/gbdt", "task": "regression", "baseScore": [0.5], "params": {},
 "features": [
  {"name": "a", "kind": "numeric"},
  {"name": "b", "kind": "categorical", "categories": ["red", "green", "blue"]},
  {"name": "c", "kind": "numeric"},
  {"name": "unused", "kind": "numeric"}
 ],
 "trees": [{"nodes": [
  {"left": 1, "right": 2, "feature": 0, "threshold": 0, "cover": 100},
  {"left": 3, "right": 4, "feature": 1, "categories": [0, 2], "defaultLeft": true, "cover": 60},
  {"left": 5, "right": 6, "feature": 2, "threshold": 1, "cover": 40},
  {"left": 7, "right": 8, "feature": 0, "threshold": -1, "cover": 35},
  {"value": 3, "cover": 25},
  {"left": 9, "right": 10, "feature": 0, "threshold": 2, "cover": 30},
  {"value": -4, "cover": 10},
  {"value": 1, "cover": 20},
  {"value": -2, "cover": 15},
  {"value": 5, "cover": 12},
  {"value": 0.5, "cover": 18}
 ]}, {"nodes": [
  {"left": 1, "right": 2, "feature": 2, "threshold": 0.5, "defaultLeft": false, "cover": 100},
  {"value": -0.7, "cover": 70},
  {"value": 1.1, "cover": 30}
 ]}]
}`

func TestTreeSHAPMatchesBruteForce(t *testing.T) {
	t.Run("small tree", func(t *testing.T) {
		m, err := gbdt.Decode([]byte(smallTree))
		if err != nil {
			t.Fatal(err)
		}
		var rows []model.Row
		for _, a := range []model.Value{{F: -2}, {F: -0.5}, {F: 1}, {F: 3}, {Null: true}} {
			for _, b := range []model.Value{{S: "red"}, {S: "green"}, {S: "purple"}, {Null: true}} {
				for _, c := range []model.Value{{F: 0}, {F: 2}, {Null: true}} {
					rows = append(rows, model.Row{a, b, c, {F: 9}})
				}
			}
		}
		checkBruteForce(t, m, rows)
		values, base, err := TreeSHAP(m, rows)
		if err != nil {
			t.Fatal(err)
		}
		for r, row := range rows {
			if values[r][3] != 0 {
				t.Fatalf("row %d: unused input has SHAP %v", r, values[r][3])
			}
			sum := base[0]
			for _, v := range values[r] {
				sum += v
			}
			if want := margins(t, m, row)[0]; math.Abs(sum-want) > 1e-12 {
				t.Fatalf("row %d: values+base %v, prediction %v", r, sum, want)
			}
		}
	})
	for _, task := range []model.Task{model.Binary, model.Multiclass} {
		t.Run("trained "+string(task), func(t *testing.T) {
			m, rows := trained(t, task, 400, 4, 5)
			checkBruteForce(t, m, rows[:60])
		})
	}
}

func TestTreeSHAPBadRow(t *testing.T) {
	m, err := gbdt.Decode([]byte(smallTree))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = TreeSHAP(m, []model.Row{{{F: 1}}})
	if err == nil || !strings.Contains(err.Error(), "row 0") {
		t.Errorf("short row: error %v, want one naming row 0", err)
	}
}
