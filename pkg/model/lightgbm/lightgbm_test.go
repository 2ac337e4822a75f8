package lightgbm_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/lightgbm"
)

// Debian has no LightGBM, so these models are written by hand from the
// format's documentation (testdata/*.txt) and their predictions computed by
// hand from LightGBM's NumericalDecision and CategoricalDecision rules.

func num(f float64) model.Value { return model.Value{F: f} }
func cat(s string) model.Value  { return model.Value{S: s} }

var null = model.Value{Null: true}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// bundle writes testdata/name as a bundle with the manifest and loads it
// through model.Load, as the inference server does.
func bundle(t *testing.T, name string, man model.Manifest, extra map[string][]byte) model.Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{lightgbm.ModelFile: data}
	for k, v := range extra {
		files[k] = v
	}
	man.Format = lightgbm.Format
	dir := t.TempDir()
	if err := model.WriteBundle(dir, &man, files); err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func predict(t *testing.T, m model.Model, rows []model.Row) []model.Prediction {
	t.Helper()
	out := make([]model.Prediction, len(rows))
	if err := m.Predict(rows, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

func TestBinaryMissingValuesAndCategories(t *testing.T) {
	m := bundle(t, "binary.txt", model.Manifest{
		Task:    model.Binary,
		Inputs:  []model.Input{{Name: "a", Kind: model.Numeric}, {Name: "b", Kind: model.Numeric}, {Name: "color", Kind: model.Categorical}},
		Classes: []string{"no", "yes"},
	}, nil)
	for _, tc := range []struct {
		row  model.Row
		raw  float64
		why  string
		want string
	}{
		{model.Row{num(0), num(1), cat("blue")}, 0.1 + 0.05, "a <= 0.5, b <= 1.5; blue (code 0) is in the left set", "yes"},
		{model.Row{num(1), null, cat("green")}, -0.2 - 0.15, "a > 0.5; green (code 1) goes right", "no"},
		{model.Row{null, num(2), cat("red")}, 0.3 + 0.05, "missing a (NaN type) goes default left; red (code 2) left", "yes"},
		{model.Row{num(0.5), null, null}, 0.1 - 0.15, "missing b (type None) reads as 0; missing category goes right", "no"},
		{model.Row{num(0.2), num(1.5), cat("violet")}, 0.1 - 0.15, "b = threshold goes left; an unknown category goes right", "no"},
	} {
		got := predict(t, m, []model.Row{tc.row})[0]
		if p := sigmoid(tc.raw); !near(got.Value, p) || !near(got.Probabilities[1], p) || !near(got.Probabilities[0], 1-p) || got.Label != tc.want {
			t.Errorf("%s: got %+v, want p %v label %s", tc.why, got, p, tc.want)
		}
		raw, err := m.(*lightgbm.Model).Raw(tc.row)
		if err != nil || !near(raw[0], tc.raw) {
			t.Errorf("%s: raw %v %v, want %v", tc.why, raw, err, tc.raw)
		}
	}
}

func TestCategoriesFileOverridesPandas(t *testing.T) {
	m := bundle(t, "binary.txt", model.Manifest{
		Task:    model.Binary,
		Inputs:  []model.Input{{Name: "a", Kind: model.Numeric}, {Name: "b", Kind: model.Numeric}, {Name: "color", Kind: model.Categorical}},
		Classes: []string{"no", "yes"},
	}, map[string][]byte{lightgbm.CategoriesFile: []byte(`{"color": ["green", "blue", "red"]}`)})
	raw, err := m.(*lightgbm.Model).Raw(model.Row{num(0), num(1), cat("green")})
	if err != nil || !near(raw[0], 0.1+0.05) {
		t.Errorf("green as code 0 should go left: raw %v %v", raw, err)
	}
}

func TestRegressionZeroAsMissingByPosition(t *testing.T) {
	// The model's features are unnamed (Column_0, Column_1): inputs map by
	// position.
	m := bundle(t, "regression.txt", model.Manifest{
		Task:   model.Regression,
		Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}},
	}, nil)
	rows := []model.Row{
		{num(0.5), num(5)},   // 10 + 0.5 + 1
		{num(0), num(5)},     // zero is missing, default right: 20 + 0.5 + 1
		{null, num(0)},       // NaN reads as zero: right; x1 zero: default left
		{num(2), num(-3)},    // 20 + 0.5 - 1
		{num(1e-36), num(2)}, // within 1e-35 of zero: missing
		{num(1), num(-1)},    // both at their thresholds: left, left
	}
	want := []float64{11.5, 21.5, 19.5, 19.5, 21.5, 9.5}
	for i, p := range predict(t, m, rows) {
		if !near(p.Value, want[i]) || p.Label != "" || p.Probabilities != nil {
			t.Errorf("row %d: got %+v, want %v", i, p, want[i])
		}
	}
}

func TestMulticlassByName(t *testing.T) {
	// Inputs in another order than the model's features, plus one the
	// model does not use.
	m := bundle(t, "multiclass.txt", model.Manifest{
		Task:    model.Multiclass,
		Inputs:  []model.Input{{Name: "x", Kind: model.Numeric}, {Name: "unused", Kind: model.Categorical}, {Name: "y", Kind: model.Numeric}},
		Classes: []string{"a", "b", "c"},
	}, nil)
	softmax := func(r ...float64) []float64 {
		var s float64
		for _, v := range r {
			s += math.Exp(v)
		}
		out := make([]float64, len(r))
		for k, v := range r {
			out[k] = math.Exp(v) / s
		}
		return out
	}
	for _, tc := range []struct {
		x     float64
		want  []float64
		label string
	}{
		{-1, softmax(1+0.5, 0, -1), "a"},
		{1, softmax(-1+0.5, 0, 1), "c"},
	} {
		got := predict(t, m, []model.Row{{num(tc.x), cat("whatever"), num(7)}})[0]
		for k := range tc.want {
			if !near(got.Probabilities[k], tc.want[k]) {
				t.Fatalf("x=%v: got %v, want %v", tc.x, got.Probabilities, tc.want)
			}
		}
		if got.Label != tc.label || got.Value != slicesMax(got.Probabilities) {
			t.Errorf("x=%v: label %q value %v, want %q", tc.x, got.Label, got.Value, tc.label)
		}
	}
}

func slicesMax(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func TestRowOfWrongWidth(t *testing.T) {
	m := bundle(t, "regression.txt", model.Manifest{
		Task: model.Regression, Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}},
	}, nil)
	err := m.Predict([]model.Row{{num(1)}}, make([]model.Prediction, 1))
	if !errors.Is(err, model.ErrInput) {
		t.Errorf("got %v, want ErrInput", err)
	}
}

func TestLoadErrors(t *testing.T) {
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	binaryInputs := []model.Input{{Name: "a", Kind: model.Numeric}, {Name: "b", Kind: model.Numeric}, {Name: "color", Kind: model.Categorical}}
	for _, tc := range []struct {
		name string
		data []byte
		man  model.Manifest
		cats map[string][]string
		want string
	}{
		{"task mismatch", read("binary.txt"), model.Manifest{Task: model.Regression, Inputs: binaryInputs}, nil,
			"objective binary makes a binary model, but the manifest's task is regression"},
		{"feature not an input", read("binary.txt"), model.Manifest{Task: model.Binary, Classes: []string{"0", "1"},
			Inputs: []model.Input{{Name: "a", Kind: model.Numeric}, {Name: "color", Kind: model.Categorical}}}, nil,
			`model feature "b" is not among the manifest's inputs`},
		{"class count", read("multiclass.txt"), model.Manifest{Task: model.Multiclass, Classes: []string{"a", "b"},
			Inputs: []model.Input{{Name: "x", Kind: model.Numeric}, {Name: "y", Kind: model.Numeric}}}, nil,
			"the model has 3 classes, the manifest 2"},
		{"unnamed features, wrong count", read("regression.txt"), model.Manifest{Task: model.Regression,
			Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}}}, nil, "2 unnamed features but the manifest 1 inputs"},
		{"categories file lacks an input", read("binary.txt"), model.Manifest{Task: model.Binary, Classes: []string{"0", "1"},
			Inputs: binaryInputs}, map[string][]string{"other": {"x"}}, `input "color" is categorical but categories.json gives no codes for it`},
		{"ranking objective", []byte(strings.Replace(string(read("regression.txt")), "objective=regression", "objective=lambdarank", 1)),
			model.Manifest{Task: model.Regression, Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}}}, nil,
			`objective "lambdarank" is not supported`},
		{"linear tree", []byte(strings.Replace(string(read("regression.txt")), "is_linear=0", "is_linear=1", 1)),
			model.Manifest{Task: model.Regression, Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}}}, nil,
			"tree 0: linear trees (linear_tree=true) are not supported"},
		{"cut short", read("regression.txt")[:200], model.Manifest{Task: model.Regression,
			Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}}}, nil, `no "end of trees" line`},
		{"child out of range", []byte(strings.Replace(string(read("regression.txt")), "right_child=-2", "right_child=-3", 1)),
			model.Manifest{Task: model.Regression, Inputs: []model.Input{{Name: "x0", Kind: model.Numeric}, {Name: "x1", Kind: model.Numeric}}}, nil,
			"tree 0: node 0: child -3 out of range"},
	} {
		_, err := lightgbm.Parse(tc.data, &tc.man, tc.cats)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
