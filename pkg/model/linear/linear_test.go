package linear

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
	"github.com/gyreml/gyre/pkg/model/train"
)

// genData writes n rows: numeric x0..x3 on different scales (x2 with 5%
// missing), a categorical c (one rare level, some missing), a class label y
// drawn from a logistic (classes 2) or softmax (more) model, and a
// regression target r.
func genData(n, classes int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 2))
	var b strings.Builder
	b.WriteString("x0,x1,x2,x3,c,y,r\n")
	levels := []string{"red", "green", "blue", "rare"}
	for range n {
		x := []float64{rng.NormFloat64(), 50 + 100*rng.NormFloat64(), rng.Float64() * 3, rng.NormFloat64() * 0.01}
		c := levels[rng.IntN(3)]
		if rng.IntN(100) == 0 {
			c = "rare"
		}
		if rng.IntN(50) == 0 {
			c = ""
		}
		x2 := fmt.Sprintf("%.6f", x[2])
		if rng.IntN(20) == 0 {
			x2, x[2] = "", 1.5
		}
		bump := map[string]float64{"red": 0.8, "green": -0.4, "blue": 0, "rare": 1, "": 0}[c]
		margins := make([]float64, classes)
		for k := range margins {
			sign := float64(k*2 - 1)
			margins[k] = sign*(1.2*x[0]+0.01*(x[1]-50)-0.7*x[2]+30*x[3]) + float64(k)*bump + 0.3*float64(k)
		}
		label := 0
		if classes == 2 {
			if rng.Float64() < 1/(1+math.Exp(-(margins[1]-margins[0]))) {
				label = 1
			}
		} else {
			probs := make([]float64, classes)
			softmax(margins, probs)
			u := rng.Float64()
			for label < classes-1 && u > probs[label] {
				u -= probs[label]
				label++
			}
		}
		r := 2*x[0] - 0.03*x[1] + 4*x[2] + bump + rng.NormFloat64()*0.5
		fmt.Fprintf(&b, "%.6f,%.6f,%s,%.8f,%s,%d,%.6f\n", x[0], x[1], x2, x[3], c, label, r)
	}
	return b.String()
}

var testInputs = []model.Input{
	{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}, {Name: "x2", Kind: model.Numeric},
	{Name: "x3", Kind: model.Numeric}, {Name: "c", Kind: model.Categorical},
}

func readTable(t testing.TB, csv string) *table.Table {
	t.Helper()
	tb, err := table.ReadCSV(strings.NewReader(csv), map[string]model.Kind{"y": model.Categorical})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func allRows(n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// findPython finds a python3 with scikit-learn: the one on PATH, else
// Debian's (a pyenv python3 on PATH may lack Debian's packages); "" when
// there is none.
func findPython() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import sklearn").Run() == nil {
			return p
		}
	}
	return ""
}

func python(t testing.TB) string {
	t.Helper()
	py := findPython()
	if py == "" {
		t.Skip("python3 with scikit-learn not found (apt-get install python3-sklearn); skipping the comparison")
	}
	return py
}

type sklearnResult struct {
	Names     []string    `json:"names"`
	Classes   []string    `json:"classes"`
	Coef      [][]float64 `json:"coef"`
	Intercept []float64   `json:"intercept"`
	Proba     [][]float64 `json:"proba"`
	Pred      []float64   `json:"pred"`
	Seconds   float64     `json:"seconds"`
	LogLoss   float64     `json:"log_loss"`
}

func runSklearn(t testing.TB, py, csv string, cfg map[string]any) sklearnResult {
	t.Helper()
	dir := t.TempDir()
	cfg["csv"] = filepath.Join(dir, "data.csv")
	if err := os.WriteFile(cfg["csv"].(string), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/sklearn_fit.py", cfgPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sklearn_fit.py: %v\n%s", err, stderr.String())
	}
	var res sklearnResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// slotOf maps the script's feature names to the model's weight slots.
func slotOf(m *Model, name string) int {
	for _, f := range m.Features() {
		if f.Name == name {
			return f.Offset
		}
		if cat, ok := strings.CutPrefix(name, f.Name+"="); ok {
			if cat == "<other>" {
				return f.Offset + len(f.Categories)
			}
			return f.Offset + slices.Index(f.Categories, cat)
		}
	}
	return -1
}

func centered(xs []float64) []float64 {
	var mean float64
	for _, x := range xs {
		mean += x / float64(len(xs))
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x - mean
	}
	return out
}

// TestLogisticMatchesSklearn fits the same penalised likelihood as
// scikit-learn's LogisticRegression(C = 1/l2) on the same standardised,
// one-hot features, and compares weights and probabilities to 1e-4.
func TestLogisticMatchesSklearn(t *testing.T) {
	py := python(t)
	for _, tc := range []struct {
		classes int
		l2      float64
	}{{2, 1}, {2, 10}, {3, 1}} {
		t.Run(fmt.Sprintf("classes=%d,l2=%v", tc.classes, tc.l2), func(t *testing.T) {
			csv := genData(3000, tc.classes, uint64(tc.classes))
			tb := readTable(t, csv)
			mdl, _, err := Logistic.Train(context.Background(), tb, allRows(tb.Rows), nil, "y", testInputs,
				map[string]any{"l2": tc.l2, "tol": 1e-10, "maxIter": 10000}, 1)
			if err != nil {
				t.Fatal(err)
			}
			m := mdl.(*Model)
			sk := runSklearn(t, py, csv, map[string]any{"target": "y", "numeric": []string{"x0", "x1", "x2", "x3"},
				"categorical": []string{"c"}, "model": "logistic", "solver": "newton-cg", "l2": tc.l2, "tol": 1e-9, "max_iter": 1000, "max_categories": 100})
			if !slices.Equal(sk.Classes, m.Classes()) {
				t.Fatalf("classes: sklearn %v, gyre %v", sk.Classes, m.Classes())
			}
			weights, intercepts := m.Weights()
			if len(weights) != len(sk.Coef) {
				t.Fatalf("%d weight rows, sklearn %d", len(weights), len(sk.Coef))
			}
			for k := range weights {
				for j, name := range sk.Names {
					slot := slotOf(m, name)
					if slot < 0 {
						t.Fatalf("no slot for %s", name)
					}
					if d := math.Abs(weights[k][slot] - sk.Coef[k][j]); d > 1e-4 {
						t.Errorf("output %d weight %s: gyre %.8f, sklearn %.8f", k, name, weights[k][slot], sk.Coef[k][j])
					}
				}
			}
			// Softmax intercepts are defined up to a shared constant.
			gi, si := intercepts, sk.Intercept
			if len(gi) > 1 {
				gi, si = centered(gi), centered(si)
			}
			for k := range gi {
				if d := math.Abs(gi[k] - si[k]); d > 1e-4 {
					t.Errorf("intercept %d: gyre %.8f, sklearn %.8f", k, gi[k], si[k])
				}
			}
			rows, err := tb.ModelRows(m.Inputs(), nil)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]model.Prediction, len(rows))
			if err := m.Predict(rows, out); err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i, p := range out {
				for k := range p.Probabilities {
					worst = max(worst, math.Abs(p.Probabilities[k]-sk.Proba[i][k]))
				}
			}
			t.Logf("largest probability difference: %.2g", worst)
			if worst > 1e-4 {
				t.Errorf("probabilities differ from sklearn's by up to %g", worst)
			}
		})
	}
}

// TestRidgeClosedForm checks the ridge solution against the optimality
// condition computed from the model's own predictions (the objective is
// strictly convex, so a zero gradient is the unique minimum), against an
// exact fit, and against scikit-learn's Ridge(alpha = l2) when present.
func TestRidgeClosedForm(t *testing.T) {
	csv := genData(2000, 2, 11)
	tb := readTable(t, csv)
	const l2 = 5.0
	mdl, metrics, err := Linear.Train(context.Background(), tb, allRows(tb.Rows), nil, "r", testInputs, map[string]any{"l2": l2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := mdl.(*Model)
	if m.Task() != model.Regression || metrics["train_rmse"] > 0.6 {
		t.Errorf("task %s, metrics %v", m.Task(), metrics)
	}
	rows, _ := tb.ModelRows(m.Inputs(), nil)
	out := make([]model.Prediction, len(rows))
	if err := m.Predict(rows, out); err != nil {
		t.Fatal(err)
	}
	// Gradient of Σ (y - ŷ)² + l2 ||w||², each feature read straight from
	// the table and standardised here.
	weights, _ := m.Weights()
	w := weights[0]
	grad := make([]float64, len(w)+1)
	r := mustColumn(t, tb, "r")
	for i, row := range rows {
		res := r.F[i] - out[i].Value
		for j, f := range m.Features() {
			v := row[j]
			switch {
			case f.Kind == model.Numeric && !v.Null:
				grad[f.Offset] -= 2 * res * (v.F - f.Mean) / f.Std
			case f.Kind == model.Categorical && !v.Null:
				k := slices.Index(f.Categories, v.S)
				if k < 0 {
					k = len(f.Categories)
				}
				grad[f.Offset+k] -= 2 * res
			}
		}
		grad[len(w)] -= 2 * res
	}
	for j := range w {
		grad[j] += 2 * l2 * w[j]
	}
	if g := normInf(grad); g > 1e-6 {
		t.Errorf("gradient at the solution: %g, want 0", g)
	}

	// y = 3x - 2 exactly, unpenalised: the weight on the standardised x is
	// 3 std(x).
	exact := table.Table{Rows: 4, Columns: []*table.Column{
		{Name: "x", Kind: model.Numeric, F: []float64{1, 2, 3, 4}, Null: make([]bool, 4)},
		{Name: "y", Kind: model.Numeric, F: []float64{1, 4, 7, 10}, Null: make([]bool, 4)},
	}}
	em, _, err := Linear.Train(context.Background(), &exact, allRows(4), nil, "y", nil, map[string]any{"l2": 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ew, eb := em.(*Model).Weights()
	if math.Abs(ew[0][0]-3*math.Sqrt(1.25)) > 1e-9 || math.Abs(eb[0]-5.5) > 1e-9 {
		t.Errorf("exact fit: w %v, b %v; want %v, 5.5", ew, eb, 3*math.Sqrt(1.25))
	}

	py := findPython()
	if py == "" {
		t.Log("python3 with scikit-learn not found: not comparing with sklearn's Ridge")
		return
	}
	sk := runSklearn(t, py, csv, map[string]any{"target": "r", "numeric": []string{"x0", "x1", "x2", "x3"},
		"categorical": []string{"c"}, "model": "ridge", "l2": l2, "tol": 1e-12, "max_iter": 1, "max_categories": 100})
	for j, name := range sk.Names {
		if d := math.Abs(w[slotOf(m, name)] - sk.Coef[0][j]); d > 1e-8 {
			t.Errorf("weight %s: gyre %.10f, sklearn %.10f", name, w[slotOf(m, name)], sk.Coef[0][j])
		}
	}
	for i := range out {
		if d := math.Abs(out[i].Value - sk.Pred[i]); d > 1e-8 {
			t.Fatalf("row %d: gyre %v, sklearn %v", i, out[i].Value, sk.Pred[i])
		}
	}
}

func mustColumn(t *testing.T, tb *table.Table, name string) *table.Column {
	t.Helper()
	c, ok := tb.Column(name)
	if !ok {
		t.Fatalf("no column %s", name)
	}
	return c
}

func TestBundleRoundTripAndDeterminism(t *testing.T) {
	tb := readTable(t, genData(20000, 3, 5))
	trainRows, validRows, err := table.Split(tb, table.SplitSpec{Holdout: 0.2, Seed: 1, Stratify: true, Target: "y"})
	if err != nil {
		t.Fatal(err)
	}
	fit := func() (model.Model, map[string]float64) {
		m, metrics, err := Logistic.Train(context.Background(), tb, trainRows, validRows, "y", testInputs, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		return m, metrics
	}
	m1, metrics := fit()
	if metrics["valid_accuracy"] < 0.5 || metrics["iterations"] < 1 {
		t.Errorf("metrics %v", metrics)
	}
	// The same weights, to the bit, on one core as on all of them.
	prev := runtime.GOMAXPROCS(1)
	m2, _ := fit()
	runtime.GOMAXPROCS(prev)
	_, f1, _ := m1.(*Model).MarshalBundle()
	_, f2, _ := m2.(*Model).MarshalBundle()
	if string(f1[modelFile]) != string(f2[modelFile]) {
		t.Error("training on one core and on several gives different models")
	}

	dir := t.TempDir()
	if err := model.Save(dir, m1, &model.Manifest{Target: "y", Metrics: metrics}); err != nil {
		t.Fatal(err)
	}
	loaded, man, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if man.Format != FormatLogistic || man.Task != model.Multiclass || len(man.Preprocessing) == 0 {
		t.Errorf("manifest: %+v", man)
	}
	rows, _ := tb.ModelRows(testInputs, validRows)
	a, b := make([]model.Prediction, len(rows)), make([]model.Prediction, len(rows))
	if err := m1.Predict(rows, a); err != nil {
		t.Fatal(err)
	}
	if err := loaded.Predict(rows, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i].Label != b[i].Label || !slices.Equal(a[i].Probabilities, b[i].Probabilities) {
			t.Fatalf("row %d: %+v before saving, %+v after loading", i, a[i], b[i])
		}
	}

	// Unseen and missing categories, missing numbers: still a prediction.
	odd := []model.Row{{{Null: true}, {F: math.NaN()}, {Null: true}, {F: 0}, {S: "purple"}}}
	if err := loaded.Predict(odd, a[:1]); err != nil || len(a[0].Probabilities) != 3 {
		t.Errorf("odd row: %+v, %v", a[0], err)
	}
	if err := loaded.Predict([]model.Row{{{F: 1}}}, a[:1]); err == nil {
		t.Error("a short row: no error")
	}
}

func TestParams(t *testing.T) {
	tb := readTable(t, genData(200, 2, 1))
	_, _, err := Logistic.Train(context.Background(), tb, allRows(tb.Rows), nil, "y", testInputs, map[string]any{"l2": 1, "learningRate": 0.1}, 0)
	if err == nil || !strings.Contains(err.Error(), `unknown param "learningRate"`) || !strings.Contains(err.Error(), "l2, maxCategories, maxIter, tol") {
		t.Errorf("unknown param: %v", err)
	}
	_, _, err = Logistic.Train(context.Background(), tb, allRows(tb.Rows), nil, "y", testInputs, map[string]any{"l2": -1}, 0)
	if err == nil || !strings.Contains(err.Error(), "l2") {
		t.Errorf("negative l2: %v", err)
	}
	_, _, err = Linear.Train(context.Background(), tb, allRows(tb.Rows), nil, "r", testInputs, map[string]any{"maxIter": 5}, 0)
	if err == nil || !strings.Contains(err.Error(), `unknown param "maxIter" (allowed: l2, maxCategories)`) {
		t.Errorf("maxIter for ridge: %v", err)
	}
	_, _, err = Linear.Train(context.Background(), tb, allRows(tb.Rows), nil, "c", testInputs[:4], nil, 0)
	if err == nil || !strings.Contains(err.Error(), "categorical") {
		t.Errorf("categorical ridge target: %v", err)
	}
	if tr, err := train.Lookup(NameLogistic); err != nil || tr != Logistic {
		t.Errorf("lookup: %v %v", tr, err)
	}
}
