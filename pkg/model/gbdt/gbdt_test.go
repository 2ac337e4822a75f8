package gbdt

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
)

func numeric(name string, f []float64) Column {
	return Column{Name: name, Kind: model.Numeric, F: f}
}

func accuracy(pred, y []float64) float64 {
	var ok float64
	for i := range y {
		if pred[i] == y[i] {
			ok++
		}
	}
	return ok / float64(len(y))
}

// binaryLabels reads binary probabilities as class indexes.
func binaryLabels(p []float64) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		if v >= 0.5 {
			out[i] = 1
		}
	}
	return out
}

func rmse(pred, y []float64) float64 {
	var s float64
	for i := range y {
		s += (pred[i] - y[i]) * (pred[i] - y[i])
	}
	return math.Sqrt(s / float64(len(y)))
}

// xor: the label is the sign of x0 times the sign of x1, flipped for 5% of
// rows; no single feature tells anything, a depth-2 tree tells all.
func xor(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 2))
	x0, x1, noise, y := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		x0[i], x1[i], noise[i] = rng.Float64()*2-1, rng.Float64()*2-1, rng.NormFloat64()
		if (x0[i] > 0) != (x1[i] > 0) {
			y[i] = 1
		}
		if rng.Float64() < 0.05 {
			y[i] = 1 - y[i]
		}
	}
	return &Dataset{Features: []Column{numeric("x0", x0), numeric("x1", x1), numeric("noise", noise)}, Y: y}
}

func TestLearnsXOR(t *testing.T) {
	m := fit(t, binarySpec, xor(4000, 1), nil)
	te := xor(2000, 2)
	// 95% is the noise ceiling.
	if acc := accuracy(binaryLabels(predict(t, m, te)), te.Y); acc < 0.92 {
		t.Errorf("xor accuracy %.3f, want >= 0.92", acc)
	}
}

// additive: y = sin(2 x0) + x1² - |x2| + noise(0.1) with two useless features.
func additive(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	d := &Dataset{Y: make([]float64, n)}
	for j := range 5 {
		d.Features = append(d.Features, numeric("x"+strconv.Itoa(j), make([]float64, n)))
	}
	for i := range n {
		x := make([]float64, 5)
		for j := range x {
			x[j] = rng.Float64()*4 - 2
			d.Features[j].F[i] = x[j]
		}
		d.Y[i] = math.Sin(2*x[0]) + x[1]*x[1] - math.Abs(x[2]) + 0.1*rng.NormFloat64()
	}
	return d
}

func TestRegressionAdditive(t *testing.T) {
	tr, te := additive(5000, 1), additive(2000, 2)
	m := fit(t, Spec{Task: model.Regression, Params: DefaultParams()}, tr, nil)
	var mean float64
	for _, y := range tr.Y {
		mean += y / float64(len(tr.Y))
	}
	base := make([]float64, len(te.Y))
	for i := range base {
		base[i] = mean
	}
	got, baseline := rmse(predict(t, m, te), te.Y), rmse(base, te.Y)
	// The noise floor is 0.1; the label's own spread is about 1.
	if got > 0.2 || got > baseline/4 {
		t.Errorf("RMSE %.3f, baseline (the mean) %.3f: want below 0.2 and a quarter of the baseline", got, baseline)
	}
}

// blobs: three Gaussian blobs in 2D, 6 standard deviations apart.
func blobs(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 4))
	centers := [][2]float64{{0, 0}, {6, 0}, {3, 6}}
	x0, x1, y := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		c := rng.IntN(3)
		x0[i], x1[i], y[i] = centers[c][0]+rng.NormFloat64(), centers[c][1]+rng.NormFloat64(), float64(c)
	}
	return &Dataset{Features: []Column{numeric("x0", x0), numeric("x1", x1)}, Y: y}
}

func TestMulticlassBlobs(t *testing.T) {
	s := Spec{Task: model.Multiclass, Classes: []string{"a", "b", "c"}, Params: DefaultParams()}
	s.Params.Trees = 30
	m := fit(t, s, blobs(3000, 1), nil)
	te := blobs(1000, 2)
	if acc := accuracy(predict(t, m, te), te.Y); acc < 0.98 {
		t.Errorf("accuracy %.3f, want >= 0.98", acc)
	}
	if m.Rounds() != 30 || len(m.file.Trees) != 90 {
		t.Errorf("%d rounds, %d trees: want 30 rounds of 3 trees", m.Rounds(), len(m.file.Trees))
	}
	out := make([]model.Prediction, 1)
	if err := m.Predict([]model.Row{{{F: 6}, {F: 0}}}, out); err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, p := range out[0].Probabilities {
		sum += p
	}
	if out[0].Label != "b" || math.Abs(sum-1) > 1e-9 || len(out[0].Probabilities) != 3 {
		t.Errorf("prediction at blob b's center = %+v", out[0])
	}
}

// missingSignal: x0 is missing for 30% of rows, and those rows are mostly
// positive; otherwise the label follows x1. x0's value itself is noise.
func missingSignal(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 5))
	x0, x1, y := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		x0[i], x1[i] = rng.NormFloat64(), rng.NormFloat64()
		p := sigmoid(2 * x1[i])
		if rng.Float64() < 0.3 {
			x0[i], p = math.NaN(), 0.95
		}
		if rng.Float64() < p {
			y[i] = 1
		}
	}
	return &Dataset{Features: []Column{numeric("x0", x0), numeric("x1", x1)}, Y: y}
}

func TestMissingValues(t *testing.T) {
	m := fit(t, binarySpec, missingSignal(5000, 1), nil)
	// x1 = -2 alone says negative; a missing x0 says positive, whether it
	// comes as Null or as NaN.
	rows := []model.Row{
		{{F: 0.5}, {F: -2}},
		{{Null: true}, {F: -2}},
		{{F: math.NaN()}, {F: -2}},
	}
	out := make([]model.Prediction, len(rows))
	if err := m.Predict(rows, out); err != nil {
		t.Fatal(err)
	}
	if out[0].Value > 0.2 || out[1].Value < 0.6 || out[2].Value != out[1].Value {
		t.Errorf("p(present x0) = %.3f, p(null x0) = %.3f, p(NaN x0) = %.3f: want < 0.2, > 0.6, equal",
			out[0].Value, out[1].Value, out[2].Value)
	}
	// Missing values in a feature never seen missing go the learned default way.
	te := missingSignal(2000, 2)
	if a := auc(predict(t, m, te), te.Y); a < 0.85 {
		t.Errorf("holdout AUC %.3f, want >= 0.85", a)
	}
}

// categorical: a 20-level feature whose levels each shift the log-odds by
// their own amount, unordered, plus a numeric feature.
func categorical(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 6))
	effects := rand.New(rand.NewPCG(99, 99)).Perm(20) // the same levels every call
	c, x, y := make([]string, n), make([]float64, n), make([]float64, n)
	for i := range n {
		level := rng.IntN(20)
		c[i], x[i] = "level-"+strconv.Itoa(level), rng.NormFloat64()
		z := float64(effects[level]-10)/3 + x[i]
		if rng.Float64() < sigmoid(z) {
			y[i] = 1
		}
	}
	return &Dataset{Features: []Column{{Name: "c", Kind: model.Categorical, S: c}, numeric("x", x)}, Y: y}
}

func TestCategorical(t *testing.T) {
	s := binarySpec
	s.Params.Trees = 50
	m := fit(t, s, categorical(8000, 1), nil)
	te := categorical(4000, 2)
	// The oracle's AUC on this data is about 0.89.
	if a := auc(predict(t, m, te), te.Y); a < 0.86 {
		t.Errorf("holdout AUC %.3f, want >= 0.86", a)
	}
	if got := len(m.file.Features[0].Categories); got != 20 {
		t.Errorf("%d categories kept, want 20", got)
	}
	// A category never seen is read as missing, not refused.
	out := make([]model.Prediction, 1)
	if err := m.Predict([]model.Row{{{S: "level-99"}, {F: 0}}}, out); err != nil || math.IsNaN(out[0].Value) {
		t.Errorf("unseen category: %+v, %v", out[0], err)
	}
}

// TestPredictMatchesTraining checks that the model's thresholds and category
// sets send raw values where training sent their bins: the validation loss
// training computed on binned data is the loss of Predict on raw data.
func TestPredictMatchesTraining(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Spec
		d    *Dataset
	}{
		{"binary with missing", binarySpec, synthBinary(3000, 8, 0.1, 1)},
		{"categorical", binarySpec, categorical(3000, 1)},
		{"multiclass", Spec{Task: model.Multiclass, Classes: []string{"a", "b", "c"}, Params: DefaultParams()}, blobs(2000, 1)},
		{"regression", Spec{Task: model.Regression, Params: DefaultParams()}, additive(2000, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Params.Trees = 20
			m := fit(t, tc.s, tc.d, tc.d)
			obj := objective{task: m.Task(), k: len(m.file.BaseScore)}
			margins := make([]float64, 0, tc.d.rows()*obj.k)
			x := make([]float64, len(m.file.Features))
			margin := make([]float64, obj.k)
			for _, row := range datasetRows(tc.d) {
				if err := m.encode(row, x); err != nil {
					t.Fatal(err)
				}
				m.margins(x, margin)
				margins = append(margins, margin...)
			}
			if got, want := obj.loss(margins, tc.d.Y), m.file.BestScore; math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Errorf("Predict's loss %v, training's %v", got, want)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	tr := synthBinary(5000, 10, 0.05, 1)
	s := binarySpec
	s.Params.Trees, s.Params.Subsample, s.Params.ColsampleByTree = 20, 0.7, 0.8
	s.Params.Seed = 7
	encode := func(s Spec) (file, trees []byte) {
		m := fit(t, s, tr, nil)
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data, jsonOf(t, m.file.Trees)
	}
	first, firstTrees := encode(s)
	if again, _ := encode(s); !bytes.Equal(first, again) {
		t.Error("the same seed gave different model files")
	}
	// The params record the thread count; the trees must not depend on it.
	for _, threads := range []int{1, 3} {
		s.Params.Threads = threads
		if _, trees := encode(s); !bytes.Equal(trees, firstTrees) {
			t.Errorf("%d threads grew other trees than GOMAXPROCS did", threads)
		}
	}
	s.Params.Threads = 0
	s.Params.Seed = 8
	if _, trees := encode(s); bytes.Equal(trees, firstTrees) {
		t.Error("seeds 7 and 8 with subsampling gave the same trees")
	}
}

func TestEarlyStopping(t *testing.T) {
	// Few rows, deep trees and a high rate: validation loss turns up early.
	tr, va := synthBinary(1000, 10, 0, 1), synthBinary(1000, 10, 0, 2)
	s := binarySpec
	s.Params.Trees, s.Params.LearningRate, s.Params.MaxDepth, s.Params.EarlyStoppingRounds = 300, 0.5, 8, 10
	m := fit(t, s, tr, va)
	rounds := m.Rounds()
	if rounds >= 100 {
		t.Fatalf("kept %d rounds: early stopping did not stop", rounds)
	}
	// The kept rounds are the first rounds of a run without early stopping,
	// and their score is the best: more rounds score worse.
	s.Params.EarlyStoppingRounds = 0
	s.Params.Trees = rounds
	exact := fit(t, s, tr, va)
	if a, b := jsonOf(t, m.file.Trees), jsonOf(t, exact.file.Trees); !bytes.Equal(a, b) {
		t.Error("the kept trees differ from a run stopped at the best round")
	}
	if exact.file.BestScore != m.file.BestScore {
		t.Errorf("best score %v, the stopped run's %v", m.file.BestScore, exact.file.BestScore)
	}
	for _, more := range []int{1, 10} {
		s.Params.Trees = rounds + more
		if longer := fit(t, s, tr, va); longer.file.BestScore <= m.file.BestScore {
			t.Errorf("%d more rounds scored %v, not worse than the best %v", more, longer.file.BestScore, m.file.BestScore)
		}
	}
}

func TestMinSplitGainPrunes(t *testing.T) {
	tr := synthBinary(2000, 5, 0, 1)
	s := binarySpec
	s.Params.Trees = 5
	loose := fit(t, s, tr, nil)
	s.Params.MinSplitGain = 5
	pruned := fit(t, s, tr, nil)
	count := func(m *Model) (n int) {
		for _, tree := range m.file.Trees {
			n += len(tree.Nodes)
			for _, nd := range tree.Nodes {
				if !nd.leaf() && nd.Gain < s.Params.MinSplitGain && m == pruned &&
					tree.Nodes[nd.Left].leaf() && tree.Nodes[nd.Right].leaf() {
					t.Errorf("a split gaining %v < minSplitGain over two leaves survived", nd.Gain)
				}
			}
		}
		return n
	}
	if a, b := count(loose), count(pruned); b >= a {
		t.Errorf("minSplitGain 5 left %d nodes, 0 left %d", b, a)
	}
}

func TestParams(t *testing.T) {
	p, err := ParseParams(map[string]any{"trees": 50, "learningRate": 0.3, "maxDepth": float64(4)})
	if err != nil || p.Trees != 50 || p.LearningRate != 0.3 || p.MaxDepth != 4 || p.Lambda != 1 {
		t.Errorf("ParseParams = %+v, %v", p, err)
	}
	for params, want := range map[*map[string]any]string{
		{"tress": 10}:               `unknown param "tress"`,
		{"maxDepth": 0}:             "maxDepth",
		{"maxDepth": 2.5}:           "maxDepth",
		{"learningRate": 0}:         "learningRate",
		{"subsample": 1.5}:          "subsample",
		{"maxBins": 300}:            "maxBins",
		{"trees": "many"}:           "trees",
		{"minChildWeight": -1.0}:    "minChildWeight",
		{"colsampleByTree": 0.0}:    "colsampleByTree",
		{"earlyStoppingRounds": -1}: "earlyStoppingRounds",
	} {
		if _, err := ParseParams(*params); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseParams(%v) = %v, want an error naming %s", *params, err, want)
		}
	}
}

func TestTrainRefuses(t *testing.T) {
	d := xor(100, 1)
	for name, tc := range map[string]struct {
		s     Spec
		valid *Dataset
		want  string
	}{
		"binary with 3 classes": {Spec{Task: model.Binary, Classes: []string{"a", "b", "c"}, Params: DefaultParams()}, nil, "2 classes"},
		"label out of range":    {Spec{Task: model.Multiclass, Classes: []string{"a"}, Params: DefaultParams()}, nil, "2 or more"},
		"early stopping alone": {Spec{Task: model.Binary, Classes: []string{"0", "1"},
			Params: func() Params { p := DefaultParams(); p.EarlyStoppingRounds = 3; return p }()}, nil, "validation"},
		"validation features": {binarySpec, &Dataset{Features: d.Features[:1], Y: d.Y}, "features"},
	} {
		if _, err := Train(t.Context(), tc.s, d, tc.valid); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	bad := xor(10, 1)
	bad.Y[3] = 2
	if _, err := Train(t.Context(), binarySpec, bad, nil); err == nil || !strings.Contains(err.Error(), "row 3") {
		t.Errorf("label 2 in a binary task: err = %v", err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	m := fit(t, binarySpec, xor(500, 1), nil)
	good, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(good); err != nil {
		t.Fatalf("decode what Marshal wrote: %v", err)
	}
	for name, edit := range map[string]func(f *File){
		"cycle":         func(f *File) { f.Trees[0].Nodes[1].Left = 1 },
		"feature":       func(f *File) { f.Trees[0].Nodes[0].Feature = 9 },
		"format":        func(f *File) { f.Format = "xgboost" },
		"classes":       func(f *File) { f.Classes = f.Classes[:1] },
		"base scores":   func(f *File) { f.BaseScore = append(f.BaseScore, 0) },
		"unknown kind":  func(f *File) { f.Features[0].Kind = "text" },
		"missing child": func(f *File) { f.Trees[0].Nodes[0].Right = len(f.Trees[0].Nodes) },
	} {
		var f File
		if err := jsonUnmarshal(good, &f); err != nil {
			t.Fatal(err)
		}
		edit(&f)
		if _, err := Decode(jsonOf(t, f)); err == nil {
			t.Errorf("%s: Decode accepted a broken model", name)
		}
	}
}
